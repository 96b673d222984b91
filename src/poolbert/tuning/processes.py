"""Worker processes: which loop a worker runs (one trial at a time, or packed), and the
workers of one command: one in this process, or N spawned processes started and stopped here.

A worker is the only place that picks between `worker.run_unpacked` and
`pack_worker.run_packed`, so neither of those modules needs the other.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue
import sys
import time
from typing import Any

import optuna

from .. import interrupts
from ..errors import PoolbertError
from ..resources import Resources
from ..training import fit
from .heads import tuning_resources
from .outage import StorageLost
from .pack_worker import pack_size, run_packed
from .settings import TuneConfig
from .space import SearchSpace
from .storage import open_storage
from .trials import FitFn
from .worker import WorkerJob, run_unpacked

WORKER_GRACE_S = 30  # seconds a stopping worker gets to record its trial
STORAGE_LOST_EXIT = 75  # a worker whose storage stayed away past --storage-timeout (EX_TEMPFAIL)


def run_worker(job: WorkerJob, fit_fn: FitFn = fit, resources: Resources | None = None) -> None:
    """Run every head's study to its budget (or the deadline); `resources` loaded if not given."""
    resources = resources or Resources.load(job.tune.run)
    tuning = tuning_resources(resources, job.tune)
    storage = open_storage(job.tune, label=f"worker {job.index}")
    size = pack_size(job.tune, resources)
    if size > 1:
        run_packed(job, storage, tuning, size)
    else:
        run_unpacked(job, storage, tuning, fit_fn)


def run_workers(tc: TuneConfig, space: SearchSpace, deadline: float | None,
                fit_fn: FitFn, gpus: list[str | None], resources: Resources) -> None:
    """Workers (one per entry of `gpus`) run until every head's budget is met; a single worker
    runs in this process (on the resources already loaded), where a first Ctrl-C stops at the
    next safe point, a second at once."""
    if len(gpus) == 1:
        with interrupts.deferred(escalate=True):
            run_worker(WorkerJob(tc, space, 0, deadline, not tc.quiet), fit_fn, resources)
    else:
        run_worker_processes(tc, space, deadline, fit_fn, gpus)


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
    if STORAGE_LOST_EXIT in codes:
        raise StorageLost(messages[0])
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


def worker_process(job: WorkerJob, fit_fn: FitFn, errors: Any) -> None:
    """Entry point of a spawned worker: exit 0, 2 or STORAGE_LOST_EXIT (its error is put on
    `errors`), or 130.
    Ctrl-C and SIGTERM stop it at the next safe point, however often they come; the parent
    kills a worker that has not stopped after its grace period."""
    try:
        with interrupts.deferred(escalate=False):
            if job.gpu is not None:  # before this process first touches CUDA
                os.environ["CUDA_VISIBLE_DEVICES"] = job.gpu
            if job.threads is not None:  # N workers x all cores each: threads fight for cores
                import torch

                torch.set_num_threads(job.threads)
            _quiet_logs()
            run_worker(job, fit_fn)
    except StorageLost as exc:
        errors.put(f"worker {job.index}: {exc}")
        sys.exit(STORAGE_LOST_EXIT)
    except PoolbertError as exc:
        errors.put(f"worker {job.index}: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _quiet_logs() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # print_trial reports each trial
