"""Ctrl-C and SIGTERM, raised where it is safe to stop.

Python raises KeyboardInterrupt between any two bytecodes, so a Ctrl-C can land inside Optuna
or SQLAlchemy while a trial is being created or told: the trial then stays RUNNING with no
one to finish it. While a study's trials run, `deferred()` turns SIGINT and SIGTERM into a
request, and `check()` raises KeyboardInterrupt at points where stopping is safe: between
training steps and evaluation batches (inside the objective, so the trial is marked and
re-queued) and between trials. Outside `deferred()`, `check()` does nothing.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state: dict[str, Any] = {"requested": None, "escalate": False}


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested while deferred."""
    if _state["requested"] is not None:
        raise _interrupt(_state["requested"])


def requested() -> int | None:
    """The signal that asked to stop, if one did."""
    return _state["requested"]


def _interrupt(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _handling(signums: tuple[int, ...], handler: Any) -> Iterator[None]:
    """`handler` for `signums` inside the block, the previous handlers after it. Outside the
    main thread signals are not ours to handle: the block runs with them untouched."""
    try:
        previous = {s: signal.signal(s, handler) for s in signums}
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _request(signum: int, frame: Any) -> None:
    if _state["requested"] is not None and _state["escalate"]:
        raise _interrupt(signum)  # asked twice: stop at once
    _state["requested"] = signum


@contextlib.contextmanager
def deferred(escalate: bool) -> Iterator[None]:
    """SIGINT and SIGTERM only request a stop, which `check()` carries out. With `escalate`, a
    second signal stops at once (a user pressing Ctrl-C twice); without it (a worker process,
    whose parent kills it after a grace period) repeats change nothing. A request still
    pending when the block ends is raised there."""
    _state.update(requested=None, escalate=escalate)
    try:
        with _handling(_SIGNALS, _request):
            yield
    finally:
        pending = _state["requested"]
        _state.update(requested=None, escalate=False)
    if pending is not None:  # asked after the last check: stop now, not later
        raise _interrupt(pending)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise _interrupt(signum)


def sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """SIGTERM stops a command the way Ctrl-C does (exit 130, finished work kept)."""
    return _handling((signal.SIGTERM,), _raise_interrupt)
