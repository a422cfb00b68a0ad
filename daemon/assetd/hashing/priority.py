"""The background hasher's low priority: nice 19 and the idle I/O class, per thread."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading

__all__ = ["lower_priority"]

# ioprio_set(2) syscall numbers; other architectures keep their I/O priority.
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "riscv64": 30}
_IOPRIO_WHO_PROCESS = 1  # a thread id is a "process" to ioprio_set
_IOPRIO_CLASS_IDLE = 3


def lower_priority() -> tuple[bool, bool]:
    """Make the calling thread nice 19 and, where the kernel's syscall number is known, of the
    idle I/O class (it reads only when no one else does; honoured by the BFQ and CFQ
    schedulers, ignored by mq-deadline and none). Threads and processes it starts inherit both.
    Returns ``(nice_set, ioprio_set)``; failing is not an error."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, 19)
        niced = True
    except OSError:
        niced = False
    number = _IOPRIO_SET.get(platform.machine())
    io_idle = False
    if number is not None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            io_idle = libc.syscall(number, _IOPRIO_WHO_PROCESS, tid, _IOPRIO_CLASS_IDLE << 13) == 0
    return niced, io_idle
