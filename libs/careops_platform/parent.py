"""Tying a child process's life to its parent's: imported by the CLI's supervisor and by every
service at start-up, so stdlib only (a CLI call must stay quick to start)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

# Set by `careops up` in each child's environment: the pid the child must not outlive.
SUPERVISOR_PID_ENV = "CAREOPS_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
# Resolved up front: a preexec_fn runs between fork and exec, where loading a library is unsafe.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Asks the kernel to send `signum` to this process when its parent exits (Linux; elsewhere
    a no-op), and exits at once if `parent_pid` is already gone (it died before the request)."""
    if _LIBC is not None and _LIBC.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        os._exit(1)


def die_with_supervisor() -> None:
    """Ties this process to the supervisor named by CAREOPS_SUPERVISOR_PID, if any, so a
    killed `careops up` cannot leave it holding its ports."""
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    if supervisor.isdigit():
        die_with_parent(int(supervisor))
