"""`run_study`: the whole study, top to bottom.

1. check settings and the search space, open (or resume) one Optuna study per head;
2. run workers (here, or N spawned processes) until each head has its finished trials;
3. write trials.csv; score each head's best model on dev; re-train it with K seeds;
4. write summary.json and summary.md (`poolbert tune` draws the report afterwards).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue
import time
from typing import Any

from .. import interrupts
from ..data import LoadedData, load_data
from ..device import resolve_device
from ..errors import PoolbertError
from ..files import write_json, write_text
from ..layout import STUDY_STARTING
from ..metrics import criterion
from ..resources import Resources, check_fit
from ..training import fit
from . import final, summary
from .markdown import summary_markdown
from .objective import FitFn, study_tracking
from .pack_worker import pack_size
from .results import read_result
from .settings import TuneConfig
from .space import SearchSpace, load_space
from .storage import open_storage, open_study, storage_description
from .worker import (
    WorkerJob,
    describe_pruner,
    n_trials_for,
    run_worker,
    study_identity,
    tuning_resources,
    worker_process,
)

WORKER_GRACE_S = 30  # seconds a stopping worker gets to record its trial


def run_study(tc: TuneConfig, fit_fn: FitFn = fit) -> dict[str, Any]:
    """Run or resume the study described by `tc`; returns summary.json's content."""
    start = time.time()
    tc.validate()
    space = load_space(tc.space)
    space.check_heads(tc.heads)
    data = load_data(tc.run.data)  # bad data, or a --metric it has not: before anything is written
    check_fit(tc.run, data)
    check_study_dir(tc)
    study_tracking(tc)  # an unknown or missing --report-to tool: refused before anything is written
    if tc.storage is None or tc.storage == "journal":  # the storage file lives in the folder
        tc.out.mkdir(parents=True, exist_ok=True)
    storage = open_storage(tc)  # an unreachable database: refused before anything is written
    for head in tc.heads:  # refuses a study of the same name that searches another space
        study = open_study(tc, storage, head, study_identity(tc, space.for_head(head)))
        for key, value in dashboard_attrs(tc, head).items():
            study.set_user_attr(key, value)
    prepare_output_dir(tc, space)  # config.json only once the storage agreed
    deadline = start + tc.timeout if tc.timeout else None
    gpus = plan_workers(tc, visible_gpus())  # one entry per worker process
    finished_before = finished_trials(tc, storage)
    with interrupts.sigterm_as_interrupt():
        try:
            resources = tune_heads(tc, space, deadline, fit_fn, gpus, data)
        finally:
            write_trials(tc, storage)
        resources = resources or Resources.load(tc.run, data)
        outcomes = [final.collect(tc, storage, h, n_trials_for(tc, space.for_head(h)))
                    for h in tc.heads]
        seeds_trained = 0
        pack = pack_size(tc, resources)
        for outcome in outcomes:
            final.score_best_on_dev(tc, outcome, resources)
            seeds_trained += final.run_seeds(tc, outcome, resources, fit_fn, pack)
    wall = time.time() - start
    previous = read_result(tc.dir)
    if previous and previous.wall_time_s is not None and not seeds_trained and \
            finished_trials(tc, storage) == finished_before:
        wall = previous.wall_time_s  # a rerun that trained nothing: it took what it took before
    result = summary.build_summary(tc, outcomes, resources.data.validation.labels,
                                   data_sizes(tc, resources), wall,
                                   budget(tc, space, len(gpus), pack), criterion(tc.run, resources.data),
                                   resources.data.label_names)
    write_json(tc.dir.summary_json, result.to_json())
    write_text(tc.dir.summary_md, summary_markdown(result))
    return result.to_json()


def dashboard_attrs(tc: TuneConfig, head: str) -> dict[str, str]:
    """What optuna-dashboard shows beside a head's study: where its runs are on disk."""
    return {"head": head, "output_dir": str(tc.out.resolve()),
            "best_run_dir": str(tc.dir.head(head).best.path.resolve())}


def finished_trials(tc: TuneConfig, storage: Any) -> int:
    """COMPLETE and PRUNED trials over all heads: what a command adds to a study."""
    return sum(final.collect(tc, storage, h, 0).n_finished for h in tc.heads)


def tune_heads(tc: TuneConfig, space: SearchSpace, deadline: float | None,
               fit_fn: FitFn, gpus: list[str | None], data: LoadedData) -> Resources | None:
    """Workers (one per entry of `gpus`) run until every head's budget is met; a single worker
    runs in this process (on the data already loaded), where a first Ctrl-C stops at the next
    safe point, a second at once."""
    if len(gpus) == 1:
        with interrupts.deferred(escalate=True):
            return run_worker(WorkerJob(tc, space, 0, deadline, not tc.quiet), fit_fn,
                              Resources.load(tc.run, data))
    run_worker_processes(tc, space, deadline, fit_fn, gpus)
    return None


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them."""
    import torch

    count = torch.cuda.device_count()
    named = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return named[:count] if named else [str(i) for i in range(count)]


def plan_workers(tc: TuneConfig, gpus: list[str]) -> list[str | None]:
    """One entry per worker process: the GPU it is pinned to, or None (CPU, or a device the
    user named, such as cuda:1). On CUDA the default is one worker per GPU times
    --trials-per-gpu; an explicit --n-workers is spread over the GPUs round-robin."""
    if not gpus or tc.run.train.device not in ("auto", "cuda"):
        return [None] * (tc.n_workers or 1)
    n = tc.n_workers or len(gpus) * tc.trials_per_gpu
    return [gpus[i % len(gpus)] for i in range(n)]


def run_worker_processes(tc: TuneConfig, space: SearchSpace, deadline: float | None,
                         fit_fn: FitFn, gpus: list[str | None]) -> None:
    """N spawned processes on the same studies. Ctrl-C or SIGTERM to this process is passed on
    to each worker, which marks its running trial at its next safe point and exits."""
    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    threads = max(1, (os.cpu_count() or 1) // len(gpus))  # the machine's cores, shared out
    jobs = [WorkerJob(tc, space, i, deadline, progress_bars=i == 0 and not tc.quiet, gpu=gpu,
                      threads=threads) for i, gpu in enumerate(gpus)]
    processes = [context.Process(target=worker_process, args=(job, fit_fn, errors),
                                 name=f"poolbert-tune-worker-{job.index}") for job in jobs]
    try:
        for process in processes:
            process.start()
        pending = processes
        while pending:  # reap each worker as it ends, so a killed one is no zombie for long
            multiprocessing.connection.wait([p.sentinel for p in pending])
            pending = [p for p in pending if p.is_alive()]
    except KeyboardInterrupt:
        stop_workers(processes)
        raise
    messages = _drain(errors)
    codes = [p.exitcode for p in processes]
    if messages:
        raise PoolbertError(messages[0])
    if 130 in codes or -2 in codes:
        raise KeyboardInterrupt
    if any(code != 0 for code in codes):
        raise PoolbertError(f"a tuning worker failed (exit codes {codes}); see its output above")


def stop_workers(processes: list) -> None:
    """Ask every worker to stop (a worker takes repeated signals as one: a Ctrl-C from the
    terminal reaches it as well), give them WORKER_GRACE_S to mark their trials, then kill the
    rest; their trials are failed as a dead worker's on the next run. A second Ctrl-C or
    SIGTERM here kills at once."""
    started = [p for p in processes if p.pid is not None]
    try:
        for process in started:
            if process.is_alive():
                process.terminate()
        deadline = time.time() + WORKER_GRACE_S
        for process in started:
            process.join(timeout=max(0.0, deadline - time.time()))
    except KeyboardInterrupt:
        pass
    for process in started:
        if process.is_alive():
            process.kill()
            process.join()


def _drain(errors: Any) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(errors.get(timeout=0.1))
        except queue.Empty:
            return messages


def check_study_dir(tc: TuneConfig) -> None:
    """Refuse another kind of folder (a file, a training run) before writing anything."""
    out = tc.out
    if out.exists() and not out.is_dir():
        raise PoolbertError(f"output path exists and is not a directory: {out}")
    # a folder holding only what a study starts with: another command is creating it now
    if out.is_dir() and any(not p.name.startswith(STUDY_STARTING) for p in out.iterdir()):
        if "tune" not in tc.dir.read_config():
            raise PoolbertError(f"output directory exists and is not a poolbert study: {out}")


def prepare_output_dir(tc: TuneConfig, space: SearchSpace) -> None:
    """Create the study directory, or resume one (after check_study_dir)."""
    tc.dir.heads.mkdir(parents=True, exist_ok=True)
    record = {**tc.run.to_dict(), "tune": tc.to_dict()}
    # the keys `poolbert report` reads
    record.update({"poolings": list(tc.heads), "study_name": tc.name,
                   "storage": storage_description(tc), "n_trials": tc.n_trials,
                   "pruner": describe_pruner(tc.pruner),
                   "sampler": f"TPESampler(seed={tc.run.train.seed})",
                   "space": {h: space.for_head(h).to_dict() for h in tc.heads}})
    write_json(tc.dir.config_file, record)


def write_trials(tc: TuneConfig, storage: Any) -> None:
    trials = {h: final.collect(tc, storage, h, 0).trials for h in tc.heads}
    summary.write_trials_csv(tc.dir.trials_csv, trials)


def data_sizes(tc: TuneConfig, resources: Resources) -> dict[str, int]:
    fit = tuning_resources(resources, tc).data
    return {"train": len(resources.data.train), "eval": len(resources.data.validation),
            "fit": len(fit.train), "holdout": len(fit.validation) if tc.select_on == "holdout"
            else 0}


def budget(tc: TuneConfig, space: SearchSpace, n_workers: int, pack: int) -> dict[str, Any]:
    return {
        "n_trials": {h: n_trials_for(tc, space.for_head(h)) for h in tc.heads},
        "space": space.source if tc.space not in ("paper", "quick") else f"{tc.space}.yaml",
        "pruner": describe_pruner(tc.pruner),
        "max_train_samples": tc.run.data.max_train_samples,
        "device": resolve_device(tc.run.train.device).type,
        "final_seeds": tc.final_seeds,
        "n_workers": n_workers,
        "trials_per_gpu": tc.trials_per_gpu,
        "pack": pack,
        "timeout": tc.timeout,
    }
