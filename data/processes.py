"""Whether the process that started a run is still alive: a run whose process is gone (killed
by SIGKILL, the machine restarted) can never finish, so it is shown as interrupted."""

from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it can be recognised later: its pid, host and start time (so a pid the system
    has reused for another process does not count as the same one). start '' where unknown."""

    pid: int
    host: str
    start: str


def _start_time(pid: int) -> str | None:
    """The process' start time in clock ticks since boot (Linux /proc), '' where there is no /proc,
    None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: fields after its last ')'.
    return stat[stat.rindex(")") + 2:].split()[19]


def this_process() -> ProcessIdentity:
    pid = os.getpid()
    return ProcessIdentity(pid, socket.gethostname(), _start_time(pid) or "")


def is_gone(identity: ProcessIdentity) -> bool | None:
    """True when the process has ended (or its pid now names another process), False when it runs,
    None when that cannot be told from here (it ran on another host)."""
    if identity.host != socket.gethostname():
        return None
    if Path("/proc").is_dir():
        start = _start_time(identity.pid)
        return start is None or (bool(identity.start) and start != identity.start)
    try:
        os.kill(identity.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def rerun_command() -> str | None:
    """The command line that reruns this process' job, where it is a `cli.py` command."""
    if not sys.argv or Path(sys.argv[0]).name != "cli.py":
        return None
    return shlex.join(["python", "cli.py", *sys.argv[1:]])
