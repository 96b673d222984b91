"""`run_study`: the whole study, top to bottom.

1. check settings and the search space, open (or resume) one Optuna study per head;
2. run workers (here, or N spawned processes: processes.py) until each head has its
   finished trials;
3. write trials.csv; score each head's best model on dev; re-train it with K seeds;
4. write summary.json and summary.md (`poolbert tune` draws the report afterwards).
"""

from __future__ import annotations

import time
from typing import Any

from .. import interrupts
from ..data import load_data
from ..device import precision_reason, resolve_device, resolve_precision
from ..encoder import max_positions
from ..errors import PoolbertError
from ..files import write_json, write_text
from ..layout import STUDY_STARTING
from ..metrics import criterion
from ..resources import Resources, check_fit
from ..training import fit
from . import final, summary
from .heads import describe_pruner, n_trials_for, study_identity, tuning_resources
from .markdown import summary_markdown
from .outage import StorageLost
from .pack_worker import pack_size
from .processes import plan_workers, run_workers, visible_gpus
from .results import read_result
from .settings import TuneConfig
from .space import SearchSpace, load_space
from .storage import open_storage, open_study, storage_description
from .trials import FitFn, study_tracking


def run_study(tc: TuneConfig, fit_fn: FitFn = fit) -> dict[str, Any]:
    """Run or resume the study described by `tc`; returns summary.json's content."""
    start = time.time()
    space, resources = check_inputs(tc)
    storage = open_studies(tc, space)
    prepare_output_dir(tc, space)  # config.json only once the storage agreed
    deadline = start + tc.timeout if tc.timeout else None
    gpus = plan_workers(tc, visible_gpus())  # one entry per worker process
    finished_before = finished_trials(tc, storage)
    with interrupts.sigterm_as_interrupt():
        try:
            run_workers(tc, space, deadline, fit_fn, gpus, resources)
        except StorageLost:
            raise  # trials.csv cannot be read from a storage that is gone
        except BaseException:
            write_trials(tc, storage)  # Ctrl-C or a failed worker: what is done is listed
            raise
        write_trials(tc, storage)
        outcomes = [final.collect(tc, storage, h, n_trials_for(tc, space.for_head(h)))
                    for h in tc.heads]
        pack = pack_size(tc, resources)
        seeds_trained = sum(final_runs(tc, outcome, resources, fit_fn, pack)
                            for outcome in outcomes)
    wall = time.time() - start
    previous = read_result(tc.study_dir)
    if previous and previous.wall_time_s is not None and not seeds_trained and \
            finished_trials(tc, storage) == finished_before:
        wall = previous.wall_time_s  # a rerun that trained nothing: it took what it took before
    return write_summary(tc, outcomes, resources, wall,
                         budget(tc, space, len(gpus), pack, unpacked_reason(tc, resources)))


def final_runs(tc: TuneConfig, outcome: final.HeadOutcome, resources: Resources,
               fit_fn: FitFn, pack: int) -> int:
    """The head's best model scored on dev, and its seed runs; how many seeds trained now."""
    final.score_best_on_dev(tc, outcome, resources)
    return final.run_seeds(tc, outcome, resources, fit_fn, pack)


def write_summary(tc: TuneConfig, outcomes: list[final.HeadOutcome], resources: Resources,
                  wall: float, budget: dict[str, Any]) -> dict[str, Any]:
    """summary.json and summary.md; returns summary.json's content."""
    result = summary.build_summary(tc, outcomes, resources.data.validation.labels,
                                   data_sizes(tc, resources), wall, budget,
                                   criterion(tc.run, resources.data), resources.data.label_names,
                                   resources.data.train.labels)
    write_json(tc.study_dir.summary_json, result.to_json())
    write_text(tc.study_dir.summary_md, summary_markdown(result))
    return result.to_json()


def check_inputs(tc: TuneConfig) -> tuple[SearchSpace, Resources]:
    """Settings, search space, data, model, tokenizer and --report-to tools: refused before
    anything is written (a study folder made for a model that cannot load would refuse the
    corrected command as another study)."""
    tc.validate()
    space = load_space(tc.space)
    space.check_heads(tc.heads)
    data = load_data(tc.run.data)  # bad data, or a --metric it has not
    check_fit(tc.run, data)
    check_study_dir(tc)
    study_tracking(tc)  # an unknown or missing --report-to tool
    resources = Resources.load(tc.run, data)  # a misspelt --model, an unreachable Hub
    pack_size(tc, resources)  # --pack K for an encoder that cannot be packed
    check_space_lengths(tc, space, resources)
    return space, resources


def check_space_lengths(tc: TuneConfig, space: SearchSpace, resources: Resources) -> None:
    """A space whose max_length reaches past what the encoder takes is refused before any
    trial (each such trial would fail)."""
    limit = max_positions(resources.base_encoder)
    for head in tc.heads:
        param = space.for_head(head).params.get("max_length")
        if param is None or limit is None:
            continue
        longest = max(param.choices) if param.choices else param.high
        if longest is not None and longest > limit:
            raise PoolbertError(f"{space.source}: head {head} searches max_length up to "
                                f"{longest}, above what {resources.model_name} takes: {limit} "
                                "tokens; narrow the space")


def open_studies(tc: TuneConfig, space: SearchSpace) -> Any:
    """The storage with each head's study created, or checked to search the same space."""
    if tc.storage is None or tc.storage == "journal":  # the storage file lives in the folder
        tc.study_dir.path.mkdir(parents=True, exist_ok=True)
    # an unreachable database: refused before anything is written
    storage = open_storage(tc, label="study")
    for head in tc.heads:  # refuses a study of the same name that searches another space
        study = open_study(tc, storage, head, study_identity(tc, space.for_head(head)))
        for key, value in dashboard_attrs(tc, head).items():
            study.set_user_attr(key, value)
    return storage


def dashboard_attrs(tc: TuneConfig, head: str) -> dict[str, str]:
    """What optuna-dashboard shows beside a head's study: where its runs are on disk."""
    return {"head": head, "output_dir": str(tc.study_dir.path.resolve()),
            "best_run_dir": str(tc.study_dir.head(head).best.path.resolve())}


def finished_trials(tc: TuneConfig, storage: Any) -> int:
    """COMPLETE and PRUNED trials over all heads: what a command adds to a study."""
    return sum(final.collect(tc, storage, h, 0).n_finished for h in tc.heads)


def check_study_dir(tc: TuneConfig) -> None:
    """Refuse another kind of folder (a file, a training run) before writing anything."""
    out = tc.study_dir.path
    if out.exists() and not out.is_dir():
        raise PoolbertError(f"output path exists and is not a directory: {out}")
    # a folder holding only what a study starts with: another command is creating it now
    if out.is_dir() and any(not p.name.startswith(STUDY_STARTING) for p in out.iterdir()):
        if "tune" not in tc.study_dir.read_config():
            raise PoolbertError(f"output directory exists and is not a poolbert study: {out}")


def prepare_output_dir(tc: TuneConfig, space: SearchSpace) -> None:
    """Create the study directory, or resume one (after check_study_dir)."""
    tc.study_dir.heads.mkdir(parents=True, exist_ok=True)
    record = {**tc.run.to_dict(), "tune": tc.to_dict()}
    # the keys `poolbert report` reads
    record.update({"poolings": list(tc.heads), "study_name": tc.name,
                   "storage": storage_description(tc), "n_trials": tc.n_trials,
                   "pruner": describe_pruner(tc.pruner),
                   "sampler": f"TPESampler(seed={tc.run.train.seed})",
                   "space": {h: space.for_head(h).to_dict() for h in tc.heads}})
    write_json(tc.study_dir.config_file, record)


def write_trials(tc: TuneConfig, storage: Any) -> None:
    trials = {h: final.collect(tc, storage, h, 0).trials for h in tc.heads}
    summary.write_trials_csv(tc.study_dir.trials_csv, trials)


def data_sizes(tc: TuneConfig, resources: Resources) -> dict[str, int]:
    fit = tuning_resources(resources, tc).data
    return {"train": len(resources.data.train), "eval": len(resources.data.validation),
            "fit": len(fit.train), "holdout": len(fit.validation) if tc.select_on == "holdout"
            else 0}


def unpacked_reason(tc: TuneConfig, resources: Resources) -> str | None:
    """Why a CUDA study trains one trial at a time by default: its encoder cannot be packed."""
    if tc.pack is not None or resolve_device(tc.run.train.device).type != "cuda":
        return None
    reason = resources.pack_refusal()
    return f"{resources.model_name} cannot be packed ({reason})" if reason else None


def budget(tc: TuneConfig, space: SearchSpace, n_workers: int, pack: int,
           unpacked: str | None = None) -> dict[str, Any]:
    device = resolve_device(tc.run.train.device)
    return {
        "n_trials": {h: n_trials_for(tc, space.for_head(h)) for h in tc.heads},
        "space": space.source if tc.space not in ("paper", "quick") else f"{tc.space}.yaml",
        "pruner": describe_pruner(tc.pruner),
        "max_train_samples": tc.run.data.max_train_samples,
        "device": device.type,
        "precision": resolve_precision(tc.run.train.precision, device),
        "precision_reason": precision_reason(tc.run.train.precision, device),
        "final_seeds": tc.final_seeds,
        "n_workers": n_workers,
        "trials_per_gpu": tc.trials_per_gpu,
        "pack": pack,
        **({"unpacked": unpacked} if unpacked else {}),
        "timeout": tc.timeout,
    }
