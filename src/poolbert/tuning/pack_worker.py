"""A worker that trains its trials in packs: K trials of a study at once, as one model.

The loop of `worker.run_unpacked`, one epoch at a time instead of one trial at a time. Before
each epoch the free places are filled with new trials (Optuna's ask, under the same budget lock
as unpacked workers, so TPE sees every result as it comes, and heads follow each other in
order, or with --race take turns); after it, every member reports its epoch: a pruned one
leaves at once, a finished one writes its run (the same run directory and trial records as an
unpacked trial) and is told COMPLETE. A member whose loss turns non-finite is pruned with its
reason, as an unpacked trial is; out of memory halves the pack and queues the parameters of the
trials that had to leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from .. import interrupts
from ..device import resolve_device, resolve_precision
from ..errors import PoolbertError
from ..pack import EpochOutcome, Member, Pack, default_pack_size
from ..resources import Resources
from ..tracking import Tracking
from .heads import HeadStudy, open_head
from .liveness import Heartbeats, fail_dead_workers, fail_stale_trials
from .locks import FileLock
from .outage import StorageLost
from .racing import Race
from .settings import TuneConfig
from .trials import (
    TrialClock,
    keep_if_best,
    mark_interrupted,
    print_trial,
    requeue,
    should_stop,
    trial_config,
)
from .worker import WorkerJob, expired


def pack_size(tc: TuneConfig, resources: Resources) -> int:
    """--pack, else by the encoder's size on CUDA; 1 (no packing) on a CPU or for an encoder
    that cannot be packed (refused with its reason when --pack asks for more)."""
    if tc.pack is not None:
        if tc.pack > 1 and (reason := resources.pack_refusal()):
            raise PoolbertError(f"--pack {tc.pack}: {resources.model_name} cannot be packed: "
                                f"{reason} (use --pack 1)")
        return tc.pack
    device = resolve_device(tc.run.train.device).type
    if device != "cuda" or resources.pack_refusal():
        return 1  # a CPU does the members' arithmetic one after the other; or no fusion
    size = sum(p.numel() for p in resources.base_encoder.parameters())
    return default_pack_size(size, device)


@dataclass
class Seat:
    """A member's trial: what the worker needs to report and tell it."""

    head: HeadStudy
    trial: optuna.Trial
    params: dict[str, Any]
    clock: TrialClock
    tracking: Tracking


def run_packed(job: WorkerJob, storage: Any, tuning: Resources, size: int) -> None:
    """Every head's study to its budget (or the deadline), `size` trials at a time."""
    tc = job.tune
    device = resolve_device(tc.run.train.device)
    t = tc.run.train
    precision = resolve_precision(t.precision, device)
    check_packable(tc, job, precision)
    pack = Pack(tuning, device, precision, t.batch_size, t.gradient_accumulation_steps,
                t.attention)
    heads = [open_head(tc, job.space, storage, head, tuning, job.index, job.quiet)
             for head in tc.heads]
    lock = FileLock(tc.study_dir.budget_lock)
    racing = Race(tc, job.space, storage, tuning) if tc.race else None
    capacity = size
    with Heartbeats(storage, tc.heartbeat_interval) as beats:
        try:
            while True:
                interrupts.check()  # between epochs: nothing half-written in the storage
                _fill(pack, capacity, heads, job, lock, beats, racing)
                if not pack.members:
                    return
                for outcome in pack.run_epoch():
                    capacity = _settle(pack, outcome, beats, capacity)
        except KeyboardInterrupt:
            for m in pack.members:
                _interrupted(m)
            raise
        except StorageLost:
            raise  # nothing can be recorded; the next worker fails and re-queues the trials
        except BaseException as exc:
            for m in pack.members:
                _fail(m, f"{type(exc).__name__}: {exc}")
            raise


def check_packable(tc: TuneConfig, job: WorkerJob, precision: str) -> None:
    """The members of a pack share batch size and accumulation, and train in bf16 or fp32."""
    for head in tc.heads:
        searched = {"batch_size", "gradient_accumulation_steps"} & set(
            job.space.for_head(head).params)
        if searched:
            raise PoolbertError(f"--pack {tc.pack or 'auto'}: the trials of a pack share one "
                                f"batch size, but the space searches {', '.join(sorted(searched))}"
                                " (use --pack 1)")
    if precision == "fp16":
        raise PoolbertError("--pack: packed trials train in bf16 or fp32, not fp16 (use "
                            "--precision fp32 or --pack 1)")


def _fill(pack: Pack, capacity: int, heads: list[HeadStudy], job: WorkerJob, lock: FileLock,
          beats: Heartbeats, racing: Race | None = None) -> None:
    """New trials into the free places, from the first head with budget left; with --race
    one trial per head in turn (rounds), leaving out heads the race stopped."""
    per_head = 1 if racing else capacity
    while True:
        before = len(pack.members)
        for head in heads:
            if len(pack.members) >= capacity or expired(job.deadline):
                return
            if head.gave_up:
                continue
            fail_dead_workers(head.study, job.tune.max_retry)
            fail_stale_trials(head.study)
            for _ in range(min(per_head, capacity - len(pack.members))):
                with lock:  # released once the new trial is RUNNING: other workers count it
                    if not head.budget_left() or (racing and racing.stopped(head.name)):
                        break
                    trial = head.ask()
                _seat(pack, head, trial, beats)
        if racing is None or len(pack.members) == before:
            return


def _seat(pack: Pack, head: HeadStudy, trial: optuna.Trial, beats: Heartbeats) -> None:
    params: dict[str, Any] = {}
    try:
        params.update(head.space.suggest(trial))
        config = trial_config(head.setup.base, head.name, params)
        tracking = head.setup.track(trial.number, config)
        seat = Seat(head, trial, params, TrialClock(trial, config, head.name), tracking)
        beats.add(trial._trial_id)  # as Optuna's own _run_trial names a trial to the storage
        pack.add(seat, config, on_record=tracking.on_record)
    except KeyboardInterrupt:
        mark_interrupted(trial, params, head.space)
        head.study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as exc:  # a tracker that cannot start: the trial fails, as unpacked
        trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}".splitlines()[0])
        head.study.tell(trial, state=TrialState.FAIL)
        raise


def _settle(pack: Pack, outcome: EpochOutcome, beats: Heartbeats, capacity: int) -> int:
    """Report a member's epoch, or its failure; it leaves when done, pruned or failed.
    Returns the pack's capacity (halved by an out-of-memory error)."""
    m = outcome.member
    seat: Seat = m.key
    seat.clock.epochs = m.epoch
    if outcome.failure is not None:
        beats.trial_ids.discard(seat.trial._trial_id)
        if outcome.out_of_memory:
            return _out_of_memory(pack, m, outcome.failure, outcome.alone, capacity)
        seat.clock.record(fail_reason=f"non-finite loss: {outcome.failure}")
        _tell(seat, TrialState.PRUNED)  # a too-large learning rate: a bad region, not a crash
        return capacity
    assert outcome.scores is not None  # an outcome has scores or a failure
    value = m.judge.value(outcome.scores.metrics)
    if should_stop(seat.trial, m.epoch, m.config.train.num_train_epochs, value):
        seat.clock.record()
        _leave(pack, m, beats)
        _tell(seat, TrialState.PRUNED)
    elif m.done:
        result = pack.result(m)
        _leave(pack, m, beats)
        seat.clock.record(best_epoch=int(result.metrics["best_epoch"]))
        value = keep_if_best(seat.head.setup, result, m.config, seat.trial.number, seat.params,
                             seat.tracking)
        _tell(seat, TrialState.COMPLETE, value)
    return capacity


def _leave(pack: Pack, m: Member, beats: Heartbeats) -> None:
    pack.remove([m])
    beats.trial_ids.discard(m.key.trial._trial_id)


def _out_of_memory(pack: Pack, m: Member, reason: str, alone: bool, capacity: int) -> int:
    """A member that had to leave a halved pack runs again later; one alone fails (and after
    enough of those the head is left to other workers), as an unpacked trial does."""
    seat: Seat = m.key
    if alone:
        seat.clock.record(fail_reason=reason)
    else:
        seat.clock.record(fail_reason=f"{reason}; its parameters are queued to run again")
        requeue(seat.trial, seat.params)
    _tell(seat, TrialState.FAIL)
    if alone:
        seat.head.count_failure()
    return max(1, min(capacity, len(pack.members)))


def _interrupted(m: Member) -> None:
    """Ctrl-C: the trial is marked and its parameters queued for the resume."""
    seat: Seat = m.key
    seat.clock.epochs = m.epoch
    seat.clock.record(fail_reason="interrupted")
    seat.tracking.finish("interrupted")
    requeue(seat.trial, seat.params)
    _tell(seat, TrialState.FAIL)


def _fail(m: Member, reason: str) -> None:
    seat: Seat = m.key
    seat.clock.record(fail_reason=reason.splitlines()[0] if reason else "failed")
    _tell(seat, TrialState.FAIL)


def _tell(seat: Seat, state: TrialState, value: float | None = None) -> None:
    seat.tracking.finish({TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned"}.get(
        state, "failed"))
    frozen = seat.head.study.tell(seat.trial, value, state=state)
    print_trial(seat.head.name, frozen)
