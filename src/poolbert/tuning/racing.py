"""--race in the workers: before a trial of a head starts, the race (race.py) over every head's
finished trials so far, read from the storage. A head the race stops is recorded on its own
study (the user attribute STOP_ATTR) the moment it is stopped, so every worker, a resumed
command and the summary agree, and it gets no more trials; a stopped head stays stopped.

Finished trials are COMPLETE and PRUNED ones (what the budget counts): a pruned trial's value
is its last reported score, a lower bound of what it would have reached, so it can only make
its head's best look no better than it is. A head is stopped only while it has budget left
(a head that has run its trials is not "saved" anything).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ..metrics import criterion
from ..resources import Resources
from .heads import n_trials_for, startup_trials
from .race import race
from .settings import TuneConfig
from .space import SearchSpace
from .storage import FINISHED, Counts, study_name

STOP_ATTR = "race_stopped"  # on a head's study: {"after_trials", "leader", "gap", "margin"}


def finished_values(trials: list[FrozenTrial]) -> list[float]:
    """The values of a head's finished trials, in trial order."""
    return [float(t.value) for t in sorted(trials, key=lambda t: t.number)
            if t.state in FINISHED and t.value is not None]


def min_trials(tc: TuneConfig, space: SearchSpace) -> int:
    """No head is judged before every head has had its sampler's random start-up trials."""
    return max(startup_trials(n_trials_for(tc, space.for_head(h))) for h in tc.heads)


def rule_text(tc: TuneConfig, n_selection: int, metric: str, min_needed: int) -> str:
    """The race's rule in words, for this study (race.RaceDecision.rule)."""
    return race({h: [] for h in tc.heads}, n_selection, metric, min_trials=min_needed).rule


class Race:
    """A worker's view of the race: `stopped(head)` before each trial of `head`."""

    def __init__(self, tc: TuneConfig, space: SearchSpace, storage: Any, tuning: Resources):
        self.maximize = tc.direction == "maximize"
        self.metric = criterion(tc.run, tuning.data).metric
        self.n_selection = len(tuning.data.validation)  # the examples trials are scored on
        self.min_trials = min_trials(tc, space)
        self.budgets = {h: n_trials_for(tc, space.for_head(h)) for h in tc.heads}
        self.studies = {h: optuna.load_study(study_name=study_name(tc, h), storage=storage)
                        for h in tc.heads}

    def stopped(self, head: str) -> bool:
        """Whether `head` gets no more trials: stopped before (by any worker), or now. Asked
        under the budget lock, so two workers do not record the same stop twice."""
        stopped = {h for h, s in self.studies.items() if STOP_ATTR in s.user_attrs}
        if head in stopped:
            return True
        running = {h: s for h, s in self.studies.items() if h not in stopped}
        if len(running) < 2:
            return False
        values = {h: finished_values(s.get_trials(deepcopy=False)) for h, s in running.items()}
        decision = race(values, self.n_selection, self.metric, self.maximize, self.min_trials)
        for h in decision.stop:
            counts = Counts.of(running[h])
            if counts.finished + counts.running >= self.budgets[h]:
                continue  # its budget is spent: nothing to save
            record = {"after_trials": len(values[h]), "leader": decision.leader,
                      "gap": decision.gaps[h], "margin": decision.margins[h]}
            running[h].set_user_attr(STOP_ATTR, record)
            stopped.add(h)
            print(f"[{h}] race: stopped after {len(values[h])} finished trials; its best "
                  f"{self.metric} is {decision.gaps[h]:.4f} behind {decision.leader}'s "
                  f"(more than the {decision.margins[h]:.4f} trial noise allows)", flush=True)
        return head in stopped
