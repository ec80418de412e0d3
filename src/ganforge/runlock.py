"""One process per run folder: `RunLock(folder)` holds `folder/.lock` while a run writes there.

The lock file is linked into place whole (a link fails where the name exists, as O_CREAT | O_EXCL does) and
holds JSON {pid, host, started, ...}. A second holder (another process, or a second RunLock in this one) gets
`RunLocked`, one line naming the holder. A lock left by a process that is gone (same host, pid no longer
running, or running as a different process that reused the pid) is stale: it is taken over and the takeover
reported. Acquiring and releasing are serialised on this host by an flock on the folder, so two processes
finding the same stale lock cannot both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no folder guard; O_EXCL alone still keeps out a second holder
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunLocked(RuntimeError):
    """The run folder is in use by another live process (or another RunLock in this one)."""


def _process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot, from /proc), or None where that is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the command name in () may hold spaces
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, started: int | None = None) -> bool:
    """Whether process `pid` runs on this host (and, when `started` is known, is the same process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    except OSError:
        return False
    if started is not None:
        now = _process_start(pid)
        if now is not None and now != started:
            return False  # the pid was reused by a newer process
    return True


@contextlib.contextmanager
def _guarded(folder: Path) -> Iterator[None]:
    """Hold an exclusive flock on `folder` (released by the kernel if this process dies)."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _read_info(path: Path) -> dict[str, Any] | None:
    """The JSON in a lock file, or None when it cannot be read as a lock."""
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def describe_holder(info: dict[str, Any]) -> str:
    """'process 1234 on host h since 2024-05-01 12:00:00'."""
    return f"process {info.get('pid')} on host {info.get('host', '?')} since {info.get('started', '?')}"


def _remove_dead_temporaries(folder: Path) -> None:
    """Remove the temporary lock files (.lock.PID.TOKEN.tmp) of processes no longer running (killed while locking)."""
    for path in folder.glob(f"{LOCK_NAME}.*.tmp"):
        pid = path.name[len(LOCK_NAME) + 1 :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            path.unlink(missing_ok=True)


class RunLock:
    """Context manager holding `folder/.lock`; `took_over` is the stale lock's JSON when one was replaced."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.took_over: dict[str, Any] | None = None
        self._token: str | None = None

    @property
    def message(self) -> str | None:
        """One line saying a stale lock was taken over, or None."""
        if self.took_over is None:
            return None
        return (f"took over {self.path}: it was held by {describe_holder(self.took_over)}, which is no longer "
                "running")

    @property
    def held(self) -> bool:
        """Whether this RunLock holds the folder now."""
        return self._token is not None

    def acquire(self) -> RunLock:
        """Create the lock file, or take over a stale one; raises RunLocked when a live process holds it."""
        if self.held:
            raise RunLocked(f"{self.folder} is already locked by this RunLock")
        self.folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        info = {"pid": os.getpid(), "host": socket.gethostname(), "process_start": _process_start(os.getpid()),
                "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"), "token": token}
        # The lock appears whole or not at all: its JSON is written to a file of this process's own, then linked
        # into place (a link fails where the name exists, as O_EXCL does). A process killed half way leaves at
        # most its own temporary file, never an empty lock that would keep every later run out.
        tmp = self.folder / f"{LOCK_NAME}.{os.getpid()}.{token}.tmp"
        with _guarded(self.folder):
            _remove_dead_temporaries(self.folder)
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(json.dumps(info) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    self.took_over = self._stale_or_raise()
                    self.path.unlink()
                    os.link(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
        self._token = token
        return self

    def _stale_or_raise(self) -> dict[str, Any]:
        """The existing lock's JSON when its holder is gone; otherwise raise RunLocked."""
        info = _read_info(self.path)
        if info is None:
            raise RunLocked(f"{self.folder} has an unreadable lock file {self.path}; remove it if no ganforge "
                            "process is using this folder")
        if info.get("host") == socket.gethostname() and not pid_alive(info["pid"], info.get("process_start")):
            return info
        raise RunLocked(f"{self.folder} is in use by {describe_holder(info)}; wait for it or remove {self.path} "
                        "if that process is gone")

    def release(self) -> None:
        """Remove the lock file if it is still this lock's (never another holder's)."""
        if self._token is None:
            return
        token, self._token = self._token, None
        if not self.folder.is_dir():
            return  # the folder was removed: nothing left to release
        with _guarded(self.folder):
            info = _read_info(self.path)
            if info is not None and info.get("token") == token and info.get("pid") == os.getpid():
                self.path.unlink()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
