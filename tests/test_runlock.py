import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ganforge import runlock
from ganforge.runlock import RunLock, RunLocked

# A second process holding or trying a lock; it loads runlock.py alone (no torch import: starts fast).
CHILD = r"""
import importlib.util, sys, time, os
spec = importlib.util.spec_from_file_location("runlock", sys.argv[1])
runlock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runlock)
go = sys.argv[3] if len(sys.argv) > 3 else None
if go:  # a racing run: judging the old lock is slowed down, so every racer judges it before any takes it
    read_info = runlock._read_info
    runlock._read_info = lambda path: (read_info(path), time.sleep(0.05))[0]
while go and not os.path.exists(go):
    time.sleep(0.001)
try:
    lock = runlock.RunLock(sys.argv[2]).acquire()
except runlock.RunLocked as e:
    print("locked:", e, flush=True)
    sys.exit(3)
print("held", lock.message, flush=True)
sys.stdin.readline()
lock.release()
"""


def _child(folder: Path, go: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", CHILD, runlock.__file__, str(folder)] + ([str(go)] if go else [])
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _in_use(folder: Path, info: dict) -> str:
    return (f"{folder} is in use by process {info['pid']} on host {info['host']} since {info['started']}; "
            f"wait for it or remove {folder / '.lock'} if that process is gone")


def test_lock_file_holds_json_and_is_released(tmp_path):
    folder = tmp_path / "runs" / "x"
    with RunLock(folder) as lock:
        info = json.loads((folder / ".lock").read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname() and info["started"]
        assert lock.held and lock.took_over is None and lock.message is None
    assert not (folder / ".lock").exists() and not lock.held
    with pytest.raises(ValueError), RunLock(folder):
        raise ValueError("the run failed")
    assert not (folder / ".lock").exists()


def test_second_lock_in_this_process_is_refused(tmp_path):
    with RunLock(tmp_path):
        info = json.loads((tmp_path / ".lock").read_text())
        with pytest.raises(RunLocked) as e:
            RunLock(tmp_path).acquire()
        assert str(e.value) == _in_use(tmp_path, info)
        assert json.loads((tmp_path / ".lock").read_text()) == info  # the refused one touched nothing
    assert not (tmp_path / ".lock").exists()


def test_a_second_process_is_refused_both_ways(tmp_path):
    with RunLock(tmp_path):
        info = json.loads((tmp_path / ".lock").read_text())
        child = _child(tmp_path)
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 3 and out.strip() == "locked: " + _in_use(tmp_path, info)

    child = _child(tmp_path)
    try:
        assert child.stdout.readline().strip() == "held None"
        info = json.loads((tmp_path / ".lock").read_text())
        assert info["pid"] == child.pid
        with pytest.raises(RunLocked) as e:
            RunLock(tmp_path).acquire()
        assert str(e.value) == _in_use(tmp_path, info)
    finally:
        child.communicate("\n", timeout=30)
    assert child.returncode == 0 and not (tmp_path / ".lock").exists()
    with RunLock(tmp_path) as lock:
        assert lock.took_over is None


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    child = _child(tmp_path)
    assert child.stdout.readline().startswith("held")
    info = json.loads((tmp_path / ".lock").read_text())
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert (tmp_path / ".lock").exists()  # a killed process cannot clean up
    with RunLock(tmp_path) as lock:
        assert lock.took_over == info
        assert lock.message == (f"took over {tmp_path / '.lock'}: it was held by process {child.pid} on host "
                                f"{info['host']} since {info['started']}, which is no longer running")
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()


def test_dead_or_reused_pid_is_stale(tmp_path):
    dead = {"pid": _dead_pid(), "host": socket.gethostname(), "started": "2020-01-01T00:00:00+00:00"}
    (tmp_path / ".lock").write_text(json.dumps(dead))
    with RunLock(tmp_path) as lock:
        assert lock.took_over == dead
    # our own pid, but the lock was written by an earlier process that had it: a reused pid
    start = runlock._process_start(os.getpid())
    if start is None:
        pytest.skip("no /proc: process start times unknown")
    reused = {"pid": os.getpid(), "host": socket.gethostname(), "process_start": start - 1, "started": "earlier"}
    (tmp_path / ".lock").write_text(json.dumps(reused))
    with RunLock(tmp_path) as lock:
        assert lock.took_over == reused


def test_locks_that_cannot_be_judged_are_kept(tmp_path):
    other = {"pid": _dead_pid(), "host": "elsewhere.example", "started": "2020-01-01T00:00:00+00:00"}
    (tmp_path / ".lock").write_text(json.dumps(other))
    with pytest.raises(RunLocked) as e:
        RunLock(tmp_path).acquire()
    assert str(e.value) == _in_use(tmp_path, other)  # a pid on another host cannot be checked from here
    (tmp_path / ".lock").write_text('{"pid": 12')
    with pytest.raises(RunLocked) as e:
        RunLock(tmp_path).acquire()
    assert str(e.value) == (f"{tmp_path} has an unreadable lock file {tmp_path / '.lock'}; remove it if no "
                            "ganforge process is using this folder")
    assert (tmp_path / ".lock").read_text() == '{"pid": 12'


def test_release_never_removes_another_holders_lock(tmp_path):
    lock = RunLock(tmp_path).acquire()
    theirs = {"pid": 1, "host": socket.gethostname(), "started": "now", "token": "theirs"}
    (tmp_path / ".lock").write_text(json.dumps(theirs))  # someone removed ours by hand and started a run
    lock.release()
    assert json.loads((tmp_path / ".lock").read_text()) == theirs


def test_pid_alive():
    assert runlock.pid_alive(os.getpid()) and not runlock.pid_alive(_dead_pid()) and not runlock.pid_alive(0)
    start = runlock._process_start(os.getpid())
    if start is not None:
        assert runlock.pid_alive(os.getpid(), start) and not runlock.pid_alive(os.getpid(), start + 1)


def test_racing_takeovers_of_a_stale_lock_leave_one_holder(tmp_path):
    """Six processes find the same stale lock at once: exactly one may take it over.

    Without the folder flock that serialises judging and taking over, several take it (or crash).
    """
    (tmp_path / ".lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": "x"}))
    go = tmp_path / "go"
    children = [_child(tmp_path, go) for _ in range(6)]
    try:
        time.sleep(0.3)  # let them all start and wait for the signal
        go.touch()
        first = [c.stdout.readline() for c in children]
        assert sum(line.startswith("held") for line in first) == 1
        assert sum(line.startswith("locked: ") for line in first) == 5
        assert "which is no longer running" in next(line for line in first if line.startswith("held"))
    finally:
        for c in children:
            c.communicate("\n", timeout=30)
    assert not (tmp_path / ".lock").exists()


KILLED_WHILE_LOCKING = r"""
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("runlock", sys.argv[1])
runlock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runlock)
def killed(*args, **kwargs):  # SIGKILL: no cleanup runs, as when the machine kills the process
    os.kill(os.getpid(), signal.SIGKILL)
os.write = os.link = killed  # the moment the lock's name would get its content
runlock.RunLock(sys.argv[2]).acquire()
"""


def test_a_process_killed_while_locking_leaves_no_lock_behind(tmp_path):
    """Killed between creating the lock and writing it, a run used to leave an empty .lock that refused every
    later run ('unreadable lock file'); the lock now appears whole or not at all."""
    child = subprocess.run([sys.executable, "-c", KILLED_WHILE_LOCKING, runlock.__file__, str(tmp_path)])
    assert child.returncode == -signal.SIGKILL
    assert not (tmp_path / runlock.LOCK_NAME).exists()
    with RunLock(tmp_path) as lock:
        assert lock.held and lock.message is None
    assert not list(tmp_path.glob(".lock*"))  # the killed process's temporary file went with the next lock
