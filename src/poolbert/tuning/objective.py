"""The unpacked trial: sample the head's settings, train, report each epoch, keep the best model.

The train function is a parameter (default `poolbert.training.fit`) so tests can pass a fake
that raises NaN losses, out-of-memory errors or Ctrl-C at will; no module-level switches.
"""

from __future__ import annotations

from typing import Any

import optuna

from ..config import RunConfig
from ..device import free_memory, is_out_of_memory
from ..losses import NonFiniteLoss
from ..metrics import criterion
from ..text import first_line
from ..tracking import Tracking
from ..training import fit
from .trials import (
    FitFn,
    TrialClock,
    TrialFailed,
    TrialSetup,
    keep_if_best,
    mark_interrupted,
    should_stop,
    trial_config,
)


class Objective:
    """`objective(trial) -> best-epoch value of the study's metric` of the sampled settings."""

    def __init__(self, setup: TrialSetup, fit_fn: FitFn = fit) -> None:
        self.setup = setup
        self.fit_fn = fit_fn

    def __call__(self, trial: optuna.Trial) -> float:
        params: dict[str, Any] = {}
        try:
            params.update(self.setup.space.suggest(trial))
            return self._run(trial, params)
        except KeyboardInterrupt:  # wherever it lands: mark the trial, queue it for the resume
            mark_interrupted(trial, params, self.setup.space)
            raise

    def _run(self, trial: optuna.Trial, params: dict[str, Any]) -> float:
        config = trial_config(self.setup.base, self.setup.head, params)
        with self.setup.track(trial.number, config) as tracking:
            return self._train(trial, params, config, tracking)

    def _train(self, trial: optuna.Trial, params: dict[str, Any], config: RunConfig,
               tracking: Tracking) -> float:
        s = self.setup
        clock = TrialClock(trial, config, s.head)
        last = config.train.num_train_epochs

        judge = criterion(config, s.resources.data)

        def on_epoch(epoch: int, metrics: dict) -> None:
            clock.epochs = epoch
            value = judge.value(metrics)
            if should_stop(trial, epoch, last, value):
                raise optuna.TrialPruned(f"pruned after epoch {epoch}: {judge.key} {value:.4f}")

        oom_reason = None
        try:
            result = self.fit_fn(config, s.resources, on_epoch=on_epoch, quiet=s.quiet,
                                   **tracking.hook())
        except optuna.TrialPruned:
            clock.record()
            raise
        except NonFiniteLoss as exc:  # a too-large learning rate: a bad region, not a crash
            clock.record(fail_reason=f"non-finite loss: {exc}")
            raise optuna.TrialPruned(f"non-finite loss: {exc}") from None
        except KeyboardInterrupt:
            clock.record()
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                clock.record(fail_reason=f"{type(exc).__name__}: {first_line(exc)}")
                raise
            oom_reason = f"out of memory: {first_line(exc)}"
        if oom_reason is not None:  # outside the handler: the traceback's tensors are released
            free_memory()
            clock.record(fail_reason=oom_reason)
            raise TrialFailed(oom_reason)

        clock.epochs = result.epochs_run
        clock.record(best_epoch=int(result.metrics["best_epoch"]))
        return keep_if_best(s, result, config, trial.number, params, tracking)
