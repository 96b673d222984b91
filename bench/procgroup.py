"""A command run in its own session, ended with everything it started.

`poolbert tune` spawns worker processes (and multiprocessing a resource tracker) that hold the
GPU; killing the command alone would leave them running into the next row. A command started
in a session of its own leads a process group that its children join, so a timeout, a Ctrl-C
or a SIGTERM of the bench ends the whole group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

GRACE_S = 3.0  # between SIGTERM and SIGKILL of a group


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


def run_group(cmd: list[str], timeout: float, env: dict[str, str] | None = None,
              cwd: str | os.PathLike | None = None) -> Finished:
    """Run `cmd` to its end or for `timeout` seconds, whichever comes first; on a timeout or an
    interrupt of this process its whole process group is ended."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Finished(proc.returncode, out, err, timed_out=False)
    except subprocess.TimeoutExpired:
        end_group(proc)
        out, err = proc.communicate()
        return Finished(proc.returncode, out, err, timed_out=True)
    except BaseException:  # Ctrl-C or SIGTERM: the row's processes do not outlive the bench
        end_group(proc)
        raise


def end_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the group, SIGKILL after GRACE_S to whatever is left of it. The leader is
    reaped only after the SIGKILL, so its pid (the group's id) cannot be reused before."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and not _exited(proc.pid):
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlive the leader, or the leader
    except ProcessLookupError:
        pass
    proc.wait()


def _exited(pid: int) -> bool:
    """Whether the child `pid` has exited, without reaping it."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
