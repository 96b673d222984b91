"""Experiment tracking (`--report-to tensorboard,mlflow,wandb`), each tool through its own library.

A run's history rows (poolbert.training) are the one source. `History` hands every row to an
`on_record` hook as it is appended; `Tracking.record` is that hook and sends the row to each
tool, so what a tool holds equals history.jsonl, and nothing is read from the device for it
(step rows arrive when `StepLog` reads the losses, every SYNC_EVERY steps and at each epoch end).

Names: a step row is `train/loss` and `train/learning_rate` at its optimiser step; an eval row is
`eval/<metric>` for each `eval_<metric>` and `train/<statistic>` for each `train_<statistic>`
(the epoch's runtime and speed) at the step its epoch ended. Parameters are the resolved
settings; tags say what the run is (head, trial, seed, study).

Where each tool writes, under `Plan.root` (a run folder, or a study folder):

    tensorboard  tensorboard/<subdir>/events.out.tfevents.*   torch's SummaryWriter, float64
    mlflow       mlruns/ (a file store) and mlartifacts/ (its artifacts); MLFLOW_TRACKING_URI,
                 when set, instead
    wandb        wandb/offline-run-*/ (`wandb sync` uploads it), or online when WANDB_API_KEY
                 or WANDB_MODE says so
"""

from __future__ import annotations

import abc
import importlib.util
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import PoolbertError
from .text import first_line

RecordHook = Callable[[dict], None]
TOOLS = ("tensorboard", "mlflow", "wandb")  # as transformers' `report_to` names them


class History(list[dict]):
    """A run's history rows; each row appended is also handed to `on_record`."""

    def __init__(self, on_record: RecordHook | None = None) -> None:
        super().__init__()
        self.on_record = on_record

    def append(self, row: dict) -> None:
        super().append(row)
        if self.on_record is not None:
            self.on_record(row)


def check_tools(names: list[str] | None) -> tuple[str, ...]:
    """The tools `--report-to` names, checked before any work: an unknown name, or a tool whose
    library is not installed, is a one-line error naming the extra to install. `none` (or
    nothing) is no tool, `all` every installed one."""
    names = [n.strip().lower() for n in names or [] if n.strip()]
    if names in ([], ["none"]):
        return ()
    if names == ["all"]:
        return tuple(t for t in TOOLS if _installed(t))
    for name in names:
        if name not in TOOLS:
            raise PoolbertError(f"--report-to: unknown tool {name!r}; choose from "
                                f"{', '.join(TOOLS)} (or none, all)")
        if not _installed(name):
            raise PoolbertError(f"--report-to {name}: {name} is not installed (pip install "
                                f"\"poolbert[{name}]\")")
    return tuple(dict.fromkeys(names))


def _installed(tool: str) -> bool:
    return importlib.util.find_spec(tool) is not None


def scalars(row: dict) -> tuple[int, dict[str, float]]:
    """A history row as (step, {name: value}) in the tools' names (the module's docstring)."""
    if row["type"] == "step":
        return int(row["step"]), {"train/loss": row["loss"], "train/learning_rate": row["lr"]}
    values = {}
    for key, value in row.items():
        if key in ("type", "step", "epoch") or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            prefix, _, rest = key.partition("_")
            values[f"{prefix}/{rest}" if prefix in ("eval", "train") and rest else key] = value
    return int(row["step"]), values


def flat_params(config: dict) -> dict[str, Any]:
    """A nested config ({"data": {...}, "model": {...}, ...}) as one level of settings."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(value if isinstance(value, dict) else {key: value})
    return out


def top_files(folder: Path) -> list[Path]:
    """A run's own files, which the tools keep as artifacts: config, metrics, history,
    predictions, loss curve (not model/, nor the tools' own folders)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@dataclass(frozen=True)
class Run:
    """One tracked run: where its logs go and what it is called."""

    root: Path  # holds tensorboard/, mlruns/, mlartifacts/, wandb/
    name: str  # "cls/trial-3", or the run folder's name
    experiment: str  # MLflow experiment, W&B group
    subdir: str = ""  # its folder under tensorboard/
    moves_to: Path | None = None  # where `root` is renamed to when the run ends


class Tracker(abc.ABC):
    """One tool's side of a run, started by its constructor (run, params, tags)."""

    @abc.abstractmethod
    def __init__(self, run: Run, params: dict[str, Any], tags: dict[str, str]) -> None: ...

    @abc.abstractmethod
    def log(self, step: int, values: dict[str, float]) -> None: ...

    @abc.abstractmethod
    def log_artifacts(self, folder: Path) -> None:
        """The run's files (top_files), where the tool keeps files."""

    @abc.abstractmethod
    def finish(self, status: str) -> None: ...


class TensorBoard(Tracker):
    def __init__(self, run: Run, params: dict[str, Any], tags: dict[str, str]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.root / "tensorboard" / run.subdir))
        self.writer.add_text("config", "```\n" + json.dumps(params, indent=1, default=str)
                             + "\n```")
        self.writer.add_text("tags", ", ".join(f"{k}: {v}" for k, v in tags.items()))

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():  # float64, so a value reads back as history's
            self.writer.add_scalar(name, value, step, new_style=True, double_precision=True)

    def log_artifacts(self, folder: Path) -> None:
        """TensorBoard keeps no files (the config is its "config" text)."""

    def finish(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()


class MLflow(Tracker):
    """MlflowClient (no fluent API: runs of a pack are tracked at the same time)."""

    STATUS = {"finished": "FINISHED", "pruned": "KILLED", "interrupted": "KILLED",
              "failed": "FAILED"}
    BATCH = 900  # metrics per log_batch (MLflow takes up to 1000)
    SEND_AT = 64  # pending metrics: the 32 steps StepLog reads at once

    def __init__(self, run: Run, params: dict[str, Any], tags: dict[str, str]) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        location = None
        self.moved: tuple[str, str] | None = None  # (final, live) prefix of artifact URIs
        if not uri:
            # the file store: MLflow 3 keeps it, in maintenance, behind this switch
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (run.root / "mlruns").resolve().as_uri()
            final = ((run.moves_to or run.root) / "mlartifacts").resolve().as_uri()
            self.moved = final, (run.root / "mlartifacts").resolve().as_uri()
            location = final  # valid once the run's folder has its final name
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or run.experiment
        experiment_id = self._experiment(name, location)
        self.run_id = self.client.create_run(experiment_id, run_name=run.name,
                                             tags=tags).info.run_id
        self.pending: list[Any] = []
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[
            Param(k, v if isinstance(v, str) else json.dumps(v)) for k, v in params.items()])

    def _experiment(self, name: str, location: str | None) -> str:
        for attempt in range(3):  # workers of one study may create it at the same moment
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            try:
                return str(self.client.create_experiment(name, artifact_location=location))
            except Exception:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(k, v, now, step) for k, v in values.items()]
        if len(self.pending) >= self.SEND_AT or any(k.startswith("eval/") for k in values):
            self._flush()

    def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:self.BATCH], self.pending[self.BATCH:]
            self.client.log_batch(self.run_id, metrics=batch)

    def log_artifacts(self, folder: Path) -> None:
        files = top_files(folder)
        if self.moved is None:
            for path in files:
                self.client.log_artifact(self.run_id, str(path))
            return
        # the store is in a folder renamed at the end (poolbert train): write the artifacts
        # where the run's artifact URI will point once it has its final name
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        final, live = self.moved
        uri = self.client.get_run(self.run_id).info.artifact_uri
        repo = get_artifact_repository(live + uri[len(final):] if uri.startswith(final) else uri)
        for path in files:
            repo.log_artifact(str(path))

    def finish(self, status: str) -> None:
        self._flush()
        self.client.set_tag(self.run_id, "status", status)
        self.client.set_terminated(self.run_id, self.STATUS[status])


class Wandb(Tracker):
    """Offline (`wandb sync` uploads the run later) unless WANDB_API_KEY or WANDB_MODE is set."""

    def __init__(self, run: Run, params: dict[str, Any], tags: dict[str, str]) -> None:
        import wandb

        mode: Literal["online", "offline"] | None = None  # WANDB_MODE decides, if set
        if not os.environ.get("WANDB_MODE"):
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        run.root.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            dir=str(run.root), project=os.environ.get("WANDB_PROJECT") or "poolbert",
            group=run.experiment, name=run.name, config=params,
            tags=[f"{k}:{v}" for k, v in tags.items()], mode=mode, reinit="create_new",
            settings=wandb.Settings(console="off", silent=True))
        # as transformers does: every metric against the optimiser step
        self.run.define_metric("train/global_step")
        self.run.define_metric("*", step_metric="train/global_step", step_sync=True)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log({"train/global_step": step, **values})

    def log_artifacts(self, folder: Path) -> None:
        files = Path(self.run.dir)  # the run's files, uploaded with it
        for path in top_files(folder):
            shutil.copy2(path, files / path.name)
            self.run.save(str(files / path.name), base_path=str(files), policy="now")

    def finish(self, status: str) -> None:
        self.run.summary["status"] = status
        self.run.finish(exit_code=0 if status in ("finished", "pruned") else 1)


TRACKERS: dict[str, type[Tracker]] = {"tensorboard": TensorBoard, "mlflow": MLflow,
                                      "wandb": Wandb}


@dataclass
class Tracking:
    """A run in every tool named (none: it does nothing). As a context manager it finishes the
    run as finished, interrupted (Ctrl-C), pruned (one of `pruned`) or failed."""

    trackers: list[Tracker] = field(default_factory=list)
    pruned: tuple[type[BaseException], ...] = ()
    status: str | None = None  # set once finished

    def record(self, row: dict) -> None:
        """The `on_record` hook: one history row to every tool."""
        step, values = scalars(row)
        for tracker in self.trackers:
            tracker.log(step, values)

    @property
    def on_record(self) -> RecordHook | None:
        """`record`, where something is tracked."""
        return self.record if self.trackers else None

    def hook(self) -> dict[str, RecordHook]:
        """`on_record` for fit(), only where something is tracked (so a train function
        without the parameter, such as the tests' stand-ins, still works untracked)."""
        return {"on_record": self.record} if self.trackers else {}

    def log_artifacts(self, folder: Path) -> None:
        for tracker in self.trackers:
            tracker.log_artifacts(folder)

    def log_files(self, write: Callable[[Path], None]) -> None:
        """Artifacts of a run whose folder is not kept (a trial that is not the best): `write`
        fills a temporary folder, the tools copy its files."""
        if not self.trackers:
            return
        with tempfile.TemporaryDirectory(prefix="poolbert-track-") as tmp:
            write(Path(tmp))
            self.log_artifacts(Path(tmp))

    def finish(self, status: str = "finished") -> None:
        """End the run in every tool (finished, pruned, failed or interrupted); only the first
        call counts. Every tool is ended even when one of them fails."""
        if self.status is not None:
            return
        self.status = status
        errors = []
        for tracker in self.trackers:
            try:
                tracker.finish(status)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is None:
            self.finish("finished")
            return
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else (
            "pruned" if isinstance(exc, self.pruned) else "failed")
        try:
            self.finish(status)
        except Exception:
            pass  # the run's own exception is the one to see


@dataclass(frozen=True)
class Plan:
    """What the tracked runs of one command share: the tools, where, the experiment."""

    tools: tuple[str, ...] = ()
    root: Path = Path(".")
    experiment: str = "poolbert"
    moves_to: Path | None = None  # the final name of `root` (a run folder written atomically)

    def start(self, name: str, config: dict, tags: dict[str, Any], subdir: str = "",
              pruned: tuple[type[BaseException], ...] = ()) -> Tracking:
        """A run named `name` in each tool, with the resolved `config` as its parameters."""
        run = Run(self.root, name, self.experiment, subdir, self.moves_to)
        params, labels = flat_params(config), {k: str(v) for k, v in tags.items()}
        tracking = Tracking(pruned=pruned)
        for tool in self.tools:
            try:
                tracking.trackers.append(TRACKERS[tool](run, params, labels))
            except Exception as exc:
                tracking.finish("failed")
                raise PoolbertError(f"--report-to {tool}: cannot start a run: "
                                    f"{first_line(exc)}") from None
        return tracking
