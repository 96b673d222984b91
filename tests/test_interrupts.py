"""Deferred Ctrl-C/SIGTERM (poolbert.interrupts): a signal only asks, `check()` stops."""

from __future__ import annotations

import os
import signal

import pytest

from poolbert import interrupts


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # Python runs the handler before the next line


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_deferred_signal_is_raised_only_by_check(signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    reached = []
    with pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name):
        with interrupts.deferred(escalate=False):
            interrupts.check()  # nothing asked yet: no-op
            send(signum)
            send(signum)  # a worker takes a repeat as the same request
            reached.append(interrupts.requested())
            interrupts.check()
            reached.append("after check")
    assert reached == [signum]
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored
    assert interrupts.requested() is None
    interrupts.check()  # outside the block nothing is pending


def test_second_signal_stops_at_once_when_escalating():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred(escalate=True):
            send(signal.SIGINT)
            reached.append("first only asked")
            send(signal.SIGINT)
            reached.append("second did not stop")
    assert reached == ["first only asked"]


def test_a_request_after_the_last_check_is_raised_when_the_block_ends():
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with interrupts.deferred(escalate=False):
            send(signal.SIGTERM)
    with interrupts.deferred(escalate=False):
        pass  # nothing asked: the block ends quietly
