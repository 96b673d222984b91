"""What a study is asked to do: the fixed run settings plus the tuning settings, and presets."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import DEFAULT_MODEL
from ..config import RunConfig
from ..errors import PoolbertError
from ..layout import StudyDir

PRUNERS = ("none", "median", "hyperband")
SELECT_ON = ("holdout", "dev")
REPORT_HEADS = ("cls", "mean_max", "attention")

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
    heads: list[str] = field(default_factory=lambda: list(REPORT_HEADS))
    space: str = "paper"  # a shipped space name or a YAML/JSON file
    n_trials: int | None = None  # per head; None: the space file's n_trials
    pruner: str = "median"
    select_on: str = "holdout"
    holdout_fraction: float = 0.15
    final_seeds: int = 5
    storage: str | None = None  # None: output_dir/study.db; "journal"; or an SQLAlchemy URL
    study_name: str | None = None  # default: the output directory's name
    n_workers: int | None = None  # None: 1 on CPU; on CUDA, GPUs x trials_per_gpu
    trials_per_gpu: int = 1  # CUDA: worker processes (trials at once) per GPU
    timeout: float | None = None  # seconds; no new trial starts after it
    max_retry: int = 2  # re-runs of a trial whose worker died
    heartbeat_interval: int = 30
    grace_period: int = 120
    quiet: bool = False
    preset: str | None = None
    command: list[str] | None = None

    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    @property
    def dir(self) -> StudyDir:
        return StudyDir(self.out)

    @property
    def name(self) -> str:
        return self.study_name or self.out.resolve().name

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
            (self.timeout is None or self.timeout > 0, "--timeout must be positive"),
            (self.max_retry >= 0, "--max-retry must be 0 or more"),
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
        out["command"] = redact_command(self.command) if self.command else None
        out["study_name"] = self.name
        return out


def redact(text: str) -> str:
    """user:password@host -> user:***@host, and password=... query values -> password=***."""
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", text)


def redact_command(command: list[str]) -> list[str]:
    return [redact(part) for part in command]
