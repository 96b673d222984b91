"""What a study is asked to do: the fixed run settings plus the tuning settings, and presets."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import (
    ALIASES,
    DEFAULT_MODEL,
    RunConfig,
    apply_overrides,
    coerce,
    flag_for,
    flatten,
    read_settings_file,
    run_config,
    setting,
)
from ..errors import PoolbertError
from ..layout import StudyDir
from ..text import redact

PRUNERS = ("none", "median", "hyperband")
SELECT_ON = ("holdout", "dev")
REPORT_HEADS = ("cls", "mean_max", "attention")
MIN_PRUNE_EPOCH = 2  # RTE accuracy is noise after one epoch: no pruner stops a trial before 2
STORAGE_TIMEOUT_S = 300.0  # a database restart or failover takes seconds to a few minutes

# A preset sets defaults; flags given on the command line win. "run" holds RunConfig fields,
# "cpu_run" those that apply only where trials run on a CPU.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "run": {"model_name_or_path": DEFAULT_MODEL, "task": "rte"},
        # a 2-core CPU needs ~10 min for the study on 200 examples (a pipeline demo: RTE is not
        # learned at that size); a GPU trains on all of train in minutes, a real result
        "cpu_run": {"max_train_samples": 200},
        "tune": {"heads": list(REPORT_HEADS), "space": "quick", "pruner": "median",
                 "select_on": "holdout", "final_seeds": 3},
    },
    "paper": {
        "run": {"model_name_or_path": "bert-base-uncased", "task": "rte"},
        "tune": {"heads": list(REPORT_HEADS), "space": "paper", "pruner": "none",
                 "select_on": "dev", "final_seeds": 5},
    },
}


def preset_run_settings(preset: str | None, device_type: str) -> dict[str, Any]:
    """The RunConfig values a preset sets for trials running on `device_type` ("cpu", "cuda")."""
    chosen = PRESETS.get(preset or "", {})
    cpu = chosen.get("cpu_run", {}) if device_type == "cpu" else {}
    return {**chosen.get("run", {}), **cpu}


@dataclass
class TuneConfig:
    """One study: `run` holds the settings every trial shares (the values not searched)."""

    run: RunConfig
    output_dir: str
    heads: list[str] = setting(
        None, "comma-separated heads to tune", flag="--poolings",
        factory=lambda: list(REPORT_HEADS))
    space: str = setting("paper", "search space: paper, quick, or a YAML/JSON file")
    n_trials: int | None = setting(
        None, "finished (complete + pruned) trials per head", shown="the space's")
    pruner: str = setting("median", "stop unpromising trials; never before epoch 2",
                          choices=PRUNERS)
    select_on: str = setting(
        "holdout", "holdout: score trials on a held-out slice of train and measure dev once at "
        "the end; dev: score and report on dev, as the report did (optimistic)",
        choices=SELECT_ON)
    holdout_fraction: float = setting(0.15, "share of train held out for --select-on holdout")
    race: bool = setting(
        False, "run the heads in rounds and stop giving trials to a head whose best score is "
        "confidently below the leader's (stopped heads are still re-trained with seeds)")
    final_seeds: int = setting(
        5, "re-train each head's best settings with seeds 1..K on all of train (0 skips)")
    storage: str | None = setting(
        None, "Optuna storage: 'journal' (journal.log in the output dir), or a database URL "
        "such as postgresql://user@host/db to share one study between machines",
        shown="study.db in the output dir")
    study_name: str | None = setting(
        None, "studies are named `<study-name>-<head>`", shown="the output directory's name")
    n_workers: int | None = setting(
        None, "worker processes on this machine",
        shown="1 on CPU; on CUDA, one per visible GPU times --trials-per-gpu")
    trials_per_gpu: int = setting(
        1, "CUDA: trials run at once on each GPU, one worker process each")
    pack: int | None = setting(
        None, "trials each worker trains together as one packed model: K trials' forward and "
        "backward in one pass (poolbert.pack)",
        shown="on CUDA by model size: 8 under 50M parameters, 4 under 150M, else 2; 1 on CPU")
    timeout: float | None = setting(
        None, "seconds after which no new trial starts (running trials finish)", shown="none")
    max_retry: int = setting(2, "re-runs of a trial whose worker died")
    storage_timeout: float = setting(
        STORAGE_TIMEOUT_S, "seconds a worker rides out a lost storage (database connection, "
        "locked or unreadable SQLite or journal file), retrying with backoff while training "
        "goes on; past it the worker stops and the same command resumes")
    heartbeat_interval: int = 30  # seconds between a running trial's heartbeats (databases)
    grace_period: int = 120  # seconds without a heartbeat before a trial counts as dead
    quiet: bool = False
    preset: str | None = setting(
        None, "quick: the embedded model, small budget (minutes on a CPU, all of train on a "
        "GPU); paper: bert-base-uncased with the report's spaces, 48/30/30 trials, selection on "
        "dev like the report. Flags given explicitly win", choices=tuple(PRESETS))
    command: list[str] | None = None

    @property
    def direction(self) -> str:
        """Optuna's direction for the studies: lower is better only for --metric loss ("auto"
        never resolves to loss)."""
        from ..metrics import direction

        return direction(self.run.train.metric)

    @property
    def study_dir(self) -> StudyDir:
        """The files of `output_dir` (layout.StudyDir)."""
        return StudyDir(Path(self.output_dir))

    @property
    def name(self) -> str:
        return self.study_name or Path(self.output_dir).resolve().name

    def validate(self) -> TuneConfig:
        self.run.validate()
        if not self.heads:
            raise PoolbertError("--poolings: give at least one head")
        if len(set(self.heads)) != len(self.heads):
            raise PoolbertError(f"--poolings: a head is listed twice: {','.join(self.heads)}")
        checks = [
            (self.pruner in PRUNERS, f"--pruner must be one of {', '.join(PRUNERS)}"),
            (self.select_on in SELECT_ON, f"--select-on must be one of {', '.join(SELECT_ON)}"),
            (0.0 < self.holdout_fraction < 1.0, "--holdout-fraction must be in (0, 1)"),
            (self.final_seeds >= 0, "--final-seeds must be 0 or more"),
            (self.n_trials is None or self.n_trials > 0, "--n-trials must be positive"),
            (self.n_workers is None or self.n_workers >= 1, "--n-workers must be at least 1"),
            (self.trials_per_gpu >= 1, "--trials-per-gpu must be at least 1"),
            (self.pack is None or self.pack >= 1, "--pack must be at least 1"),
            (self.timeout is None or self.timeout > 0, "--timeout must be positive"),
            (self.max_retry >= 0, "--max-retry must be 0 or more"),
            (self.storage_timeout > 0, "--storage-timeout must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise PoolbertError(message)
        if not re.fullmatch(r"[A-Za-z0-9_.:@+-]+", self.name):
            raise PoolbertError(f"study name {self.name!r}: use letters, digits and _.-:@+ only "
                                "(set --study-name)")
        return self

    def to_dict(self) -> dict[str, Any]:
        """For config.json: every setting, with any database password redacted."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "run"}
        out["storage"] = redact(self.storage) if self.storage else None
        out["command"] = [redact(part) for part in self.command] if self.command else None
        out["study_name"] = self.name
        return out


TUNE_ALIASES = {"poolings": "heads"}  # the flag's name, accepted as a keyword too


def tune_config(base: RunConfig | str | os.PathLike | None, values: dict[str, Any], *,
                output_dir: str | os.PathLike, preset: str | None = None, quiet: bool = False,
                command: list[str] | None = None) -> TuneConfig:
    """A checked TuneConfig, by the same rules for flags and keyword arguments: `base` (a
    RunConfig or a settings file of run settings), the preset's defaults for what the caller
    did not choose, then `values` (run and study settings by name; `poolings` for the heads).
    A flag that fixes a setting the space searches is refused (ambiguous)."""
    values = {TUNE_ALIASES.get(k, k): v for k, v in values.items()}
    if "pooling" in values:
        raise PoolbertError("tune compares heads: give --poolings (poolings=[...]), not "
                            "--pooling")
    tune_keys = {f.name for f in dataclasses.fields(TuneConfig)}
    study = {k: v for k, v in values.items() if k in tune_keys}
    run_values = {k: v for k, v in values.items() if k not in tune_keys}
    config = run_config(base, run_values, source="settings")
    chosen = {ALIASES.get(k, k) for k in run_values}
    if base is not None and not isinstance(base, RunConfig):
        chosen |= set(flatten(read_settings_file(base)))
    preset_values = preset_run_settings(preset, _device_type(config.train.device))
    apply_overrides(config, {k: v for k, v in preset_values.items() if k not in chosen}, "preset")
    tc = TuneConfig(run=config.validate(), output_dir=str(output_dir), quiet=quiet,
                    command=command, preset=preset)
    for key, value in PRESETS.get(preset or "", {}).get("tune", {}).items():
        setattr(tc, key, copy.deepcopy(value))  # never share the preset's lists
    for key, value in study.items():
        setattr(tc, key, None if value is None else coerce(TuneConfig, key, value, "settings"))
    _refuse_fixed_and_searched(tc, set(run_values))
    return tc.validate()


def _device_type(device: str) -> str:
    """Where trials will run ("cpu" or "cuda"), for the preset's device-specific values."""
    from ..device import resolve_device

    return resolve_device(device).type


def _refuse_fixed_and_searched(tc: TuneConfig, given: set[str]) -> None:
    """Unknown heads, and settings that fix a searched setting (ambiguous), fail before any
    work."""
    from .space import load_space

    space = load_space(tc.space)
    space.check_heads(tc.heads)
    for head in tc.heads:
        for name in space.for_head(head).params:
            if name in given:
                raise PoolbertError(f"{flag_for(name)} is searched by the space {space.source} "
                                    f"(head {head}); drop the flag or remove {name} from the "
                                    "space")
