"""The decoded-image cache: uint8 arrays on disk, keyed by what was read and how, written atomically.

An entry is three files in the cache folder: `<key>.npy` (uint8 (N, C, H, W), read back memory-mapped),
`<key>.labels.npy` (int64 (N,), only for labelled data) and `<key>.json` (class names, the load report,
the content hash and the byte sizes of the two arrays). The json is written last and removed first, so
an entry counts only when its json exists and the arrays have the sizes it records: a crash part-way
through a write leaves a miss, never a half entry read as valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1  # bump when decoding changes what a key's pixels would be
SUFFIXES = (".npy", ".labels.npy", ".json")


@dataclass
class CacheEntry:
    """One cache entry read back: the images (read-only memmap), the labels and the json metadata."""

    x: np.ndarray  # uint8 (N, C, H, W), np.memmap opened read-only
    y: np.ndarray | None  # int64 (N,) or None
    meta: dict[str, Any]  # class_names, report, sha256, sizes
    path: Path  # the .npy file


def default_cache_dir() -> Path:
    """Where decoded datasets are cached unless a folder is given: ~/.cache/ganforge/datasets."""
    return Path("~/.cache/ganforge/datasets").expanduser()


def cache_key(source: str, fingerprint: Any, options: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """sha256 of the absolute source path, its file fingerprint, the decode options and the format version."""
    blob = {"format": FORMAT_VERSION, "source": source, "files": fingerprint, "options": options, **(extra or {})}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def content_sha256(x: np.ndarray, y: np.ndarray | None = None) -> str:
    """Hash of the array contents (shape, dtype, bytes) and labels: identical pixels -> identical hash."""
    h = hashlib.sha256()
    h.update(f"{x.dtype.str}{tuple(x.shape)}".encode())
    h.update(memoryview(np.ascontiguousarray(x)).cast("B"))
    if y is not None:
        h.update(f"{y.dtype.str}{tuple(y.shape)}".encode())
        h.update(memoryview(np.ascontiguousarray(y)).cast("B"))
    return h.hexdigest()


def _paths(cache_dir: Path, key: str) -> tuple[Path, Path, Path]:
    return cache_dir / f"{key}.npy", cache_dir / f"{key}.labels.npy", cache_dir / f"{key}.json"


def read_entry(cache_dir: str | Path, key: str) -> CacheEntry | None:
    """The valid entry for `key`, or None (missing, half-written, truncated or unreadable: all a miss)."""
    x_path, y_path, json_path = _paths(Path(cache_dir), key)
    try:
        meta = json.loads(json_path.read_text())
        if meta.get("format") != FORMAT_VERSION or meta.get("key") != key:
            return None
        if x_path.stat().st_size != meta["x_bytes"]:
            return None
        x = np.load(x_path, mmap_mode="r", allow_pickle=False)
        if x.dtype != np.uint8 or list(x.shape) != meta["x_shape"]:
            return None
        y = None
        if meta["y_bytes"] is not None:
            if y_path.stat().st_size != meta["y_bytes"]:
                return None
            y = np.load(y_path, allow_pickle=False)
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return CacheEntry(x, y, meta, x_path)


def _atomic_write(path: Path, write) -> int:
    """Write through `write(file)` into a temp file beside `path`, fsync, then rename; returns the size."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path.stat().st_size


def _write_json(path: Path, meta: dict[str, Any]) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(meta, indent=1).encode()))


def write_entry(
    cache_dir: str | Path, key: str, x: np.ndarray, y: np.ndarray | None, meta: dict[str, Any]
) -> Path:
    """Store an entry atomically (json last); raises OSError when the folder is not writable."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    x_path, y_path, json_path = _paths(cache_dir, key)
    json_path.unlink(missing_ok=True)  # an old json must never vouch for arrays being replaced
    try:
        x_bytes = _atomic_write(x_path, lambda f: np.save(f, np.ascontiguousarray(x, dtype=np.uint8)))
        y_bytes = None
        if y is not None:
            y_bytes = _atomic_write(y_path, lambda f: np.save(f, np.ascontiguousarray(y, dtype=np.int64)))
        meta = {**meta, "format": FORMAT_VERSION, "key": key, "x_shape": list(x.shape), "x_bytes": x_bytes,
                "y_bytes": y_bytes}
        _write_json(json_path, meta)
    except OSError:  # a full disk: leave no arrays without their json behind
        for path in (json_path, x_path, y_path):
            path.unlink(missing_ok=True)
        raise
    return x_path


def remove_stale(cache_dir: str | Path, key: str, same: dict[str, Any]) -> int:
    """Delete other entries whose json has every item of `same` (an older copy of one folder); returns how many."""
    cache_dir, removed = Path(cache_dir), 0
    for json_path in cache_dir.glob("*.json"):
        other = json_path.name[: -len(".json")]
        if other == key:
            continue
        try:
            meta = json.loads(json_path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and all(meta.get(k) == v for k, v in same.items()):
            for path in (json_path, *_paths(cache_dir, other)[:2]):  # json first: never half an entry
                path.unlink(missing_ok=True)
            removed += 1
    return removed


def _entry_files(cache_dir: Path) -> list[Path]:
    if not cache_dir.is_dir():
        return []
    return [p for p in cache_dir.iterdir() if p.is_file() and (p.name.endswith(SUFFIXES) or p.name.endswith(".tmp"))]


def cache_size(cache_dir: str | Path | None = None) -> int:
    """Bytes used by cache entries (and leftover temp files) in `cache_dir`."""
    return sum(p.stat().st_size for p in _entry_files(Path(cache_dir or default_cache_dir())))


def clear_cache(cache_dir: str | Path | None = None) -> int:
    """Delete every cache entry and leftover temp file in `cache_dir`; returns how many files went."""
    files = _entry_files(Path(cache_dir or default_cache_dir()))
    for p in sorted(files, key=lambda p: not p.name.endswith(".json")):  # json first: no half entry survives
        p.unlink(missing_ok=True)
    return len(files)
