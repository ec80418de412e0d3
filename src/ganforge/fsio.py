"""Crash-safe file writes and standard-JSON logs.

A file written here is either the old one or the complete new one, never a mix: the bytes go to a
temporary file of a unique name beside the destination, which is flushed to disk (fsync) and then
renamed over it; the folder is fsynced too so the rename itself survives a power cut. JSON Lines
records are written as standard JSON (NaN and infinities become null) one whole line per write, and
read back tolerating the cut-off last line a crash can leave.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


class WriteError(OSError):
    """A file could not be written; the message is one line naming the file and the system's reason."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno  # set after init, so str() stays the one-line message (no "[Errno N]")


def describe_os_error(e: OSError) -> str:
    """The system's reason for an OSError in a few words ('No space left on device'), without the path."""
    return e.strerror or str(e) or type(e).__name__


def _file_mode(path: Path) -> int:
    """Permission bits for a new `path`: the old file's, else what open() would give under the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)  # read the umask (Python has no getter); set back at once
        os.umask(umask)
        return 0o666 & ~umask


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows, or a folder we may not open: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, what: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on a clean exit it is fsynced and renamed over `path`.

    On any exception the temporary file is removed and `path` is untouched. An OSError (full disk,
    no permission, read-only filesystem) is raised as WriteError: "cannot write <what><path>: <reason>".
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        yield tmp
        with open(tmp, "rb+") as f:
            with contextlib.suppress(AttributeError, OSError):  # no fchmod on Windows
                os.fchmod(f.fileno(), _file_mode(path))  # mkstemp (and some writers) make 0600 files
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as e:
        if isinstance(e, WriteError):
            raise
        raise WriteError(f"cannot write {what}{path}: {describe_os_error(e)}", e.errno) from e
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (temporary file, fsync, rename); raises WriteError."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (temporary file, fsync, rename); raises WriteError."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy `src` to `dst` atomically (e.g. a checkpoint to best.safetensors); raises WriteError."""
    dst = Path(dst)
    with open(src, "rb") as fsrc, atomic_path(dst) as tmp, open(tmp, "wb") as fdst:  # a missing src: plain OSError
        shutil.copyfileobj(fsrc, fdst)
    return dst


def _scalar(value: Any) -> Any:
    """A numpy scalar or one-element tensor as a Python number; anything else unchanged."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return value


def json_safe(value: Any, key: str = "") -> Any:
    """`value` with NaN and infinities as None and numpy/torch scalars as numbers, so it is standard JSON.

    Raises TypeError naming the key of a value JSON cannot hold.
    """
    value = _scalar(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, f"{key}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{key or 'record'}: a {type(value).__name__} cannot be written as JSON")


def dumps_record(record: dict) -> str:
    """One JSON Lines line (with its newline) for `record`, standard JSON only."""
    return json.dumps(json_safe(record), allow_nan=False) + "\n"


def append_jsonl(f: IO[str], record: dict) -> None:
    """Append `record` to an open JSON Lines file as one line of standard JSON (NaN/inf -> null), flushed."""
    f.write(dumps_record(record))  # one write per line: a crash cuts at most the last line
    f.flush()


def read_jsonl(path: str | Path) -> tuple[list[dict], int]:
    """The JSON-object records of a JSON Lines file and how many lines were dropped as unreadable.

    A crash while appending leaves a cut-off last line (or a tail of NUL bytes); those lines are
    dropped and counted rather than raised. Blank lines are neither records nor dropped.
    """
    records: list[dict] = []
    dropped = 0
    for raw in Path(path).read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            dropped += 1
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            dropped += 1
    return records, dropped


def write_jsonl(path: str | Path, records: list[dict]) -> Path:
    """Replace a JSON Lines file atomically with `records` (e.g. a log trimmed back to a resumed step)."""
    return atomic_write_text(path, "".join(dumps_record(r) for r in records))
