"""The user's own arrays: a .npy or .npz file read as images (uint8 NCHW) or as vectors (float32 (N, D)).

Never unpickles: np.load always runs with allow_pickle=False, and an object array is a one-line error.
"""

from __future__ import annotations

import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.config import ConfigError
from ganforge.data import cache
from ganforge.data.images import (
    LoadedImages,
    auto_resolution,
    check_options,
    check_upscale,
    convert_channels,
    fit_square,
    to_float,
)

DATA_KEYS = ("x", "images", "data", "arr_0")  # the data array of an .npz, first present wins
LABEL_KEYS = ("labels", "y")  # the labels of an .npz, unless labels_key names another
IMAGE_CHANNELS = (1, 3, 4)

__all__ = ["LoadedVectors", "load_array", "to_float"]


@dataclass
class LoadedVectors:
    """Rows of numbers as float32 (N, D), optional labels, and a report of how they were read."""

    x: np.ndarray  # float32 (N, D)
    y: np.ndarray | None  # int64 (N,) class indices, or None
    source: str  # the array file, absolute
    sha256: str  # content hash of x (and y)
    report: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)  # label index -> name ([] when unlabelled)

    def __len__(self) -> int:
        return self.x.shape[0]

    def describe(self) -> list[str]:
        """The report as human log lines."""
        r = self.report
        lines = [f"read {r['rows']:,} vectors of {r['dim']} values from {self.source} ({r['key']}, {r['dtype']})"]
        if r.get("classes"):
            lines.append(f"{len(r['classes'])} classes: " + ", ".join(f"{k} ({v:,})" for k, v in r["classes"].items()))
        return lines + [f"warning: {w}" for w in r.get("warnings", [])]


# --------------------------------------------------------------------------------------------------
# Reading the file


def _np_load(path: str) -> Any:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:1] == b"\x80":  # the first byte of a pickle (protocol 2 and up)
        raise ConfigError(f"{path} is a Python pickle, which ganforge never loads; save a plain numeric array "
                          "(np.save / np.savez)")
    if magic != b"\x93NUMPY" and magic[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ConfigError(f"{path} is not a numpy .npy or .npz file")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise ConfigError(f"{path} holds Python objects (a pickled object array), which ganforge never "
                              "loads; save a plain numeric array") from None
        raise ConfigError(f"{path} is not a readable numpy file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path} is not a readable numpy file ({e})") from None


def _get(archive: Any, key: str, path: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError:  # numpy refuses object arrays without allow_pickle
        raise ConfigError(f"{path}: array {key!r} holds Python objects (a pickled object array), which "
                          "ganforge never loads; save a plain numeric array") from None


def _read(path: str, labels_key: str | None) -> tuple[np.ndarray, np.ndarray | None, str, str | None]:
    """(data, labels, data key, labels key) from a .npy or .npz."""
    loaded = _np_load(path)
    if isinstance(loaded, np.ndarray):
        if labels_key is not None:
            raise ConfigError(f"{path} is a .npy with one array; labels (labels_key={labels_key!r}) need an .npz")
        return loaded, None, "the array", None
    with loaded as archive:
        keys = list(archive.files)
        if labels_key is not None and labels_key not in keys:
            raise ConfigError(f"{path} has no array {labels_key!r} for the labels; it holds {', '.join(keys)}")
        y_key = labels_key or next((k for k in LABEL_KEYS if k in keys), None)
        rest = [k for k in keys if k != y_key]
        x_key = next((k for k in DATA_KEYS if k in rest), None) or (rest[0] if len(rest) == 1 else None)
        if x_key is None:
            raise ConfigError(f"{path}: cannot tell which array is the data among {', '.join(keys) or 'none'}; "
                              f"name it one of {', '.join(DATA_KEYS)}")
        return _get(archive, x_key, path), (_get(archive, y_key, path) if y_key else None), x_key, y_key


def _check_labels(y: np.ndarray, n: int, path: str, key: str) -> np.ndarray:
    if y.ndim != 1 or y.shape[0] != n:
        raise ConfigError(f"{path}: labels {key!r} must be 1-D with one per row ({n:,}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"{path}: labels {key!r} must be integers, got {y.dtype} (save them with .astype(int))")
    if n and y.min() < 0:
        raise ConfigError(f"{path}: labels {key!r} must be class indices >= 0, found {int(y.min())}")
    return y.astype(np.int64)


def image_layout(shape: tuple[int, ...]) -> tuple[str, str]:
    """"vectors", "NHW", "NHWC" or "NCHW" for an array shape, and a note when the choice was a guess."""
    if len(shape) in (1, 2):
        return "vectors", ""
    if len(shape) == 3:
        return "NHW", ""
    if len(shape) == 4:
        first, last = shape[1] in IMAGE_CHANNELS, shape[3] in IMAGE_CHANNELS
        if first and last:
            return "NCHW", f"shape {shape} could be NCHW or NHWC: read as NCHW ({shape[1]} channels)"
        if first or last:
            return ("NCHW" if first else "NHWC"), ""
        raise ConfigError(f"images need 1, 3 or 4 channels first (N, C, H, W) or last (N, H, W, C), got shape {shape}")
    raise ConfigError(f"expected (N,) or (N, D) vectors or (N, H, W[, C]) images, got shape {shape}")


def _span(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]"


def to_uint8(x: np.ndarray) -> tuple[np.ndarray, str]:
    """Image pixels of any numeric type -> uint8 0..255, and a note on the range found and how it was read."""
    if x.dtype == np.uint8:
        return x, "uint8 pixels as they are"
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255, "boolean pixels as 0 / 255"
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ConfigError(f"image pixels must be numbers, got {x.dtype}")
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if np.issubdtype(x.dtype, np.integer):
        if lo < 0 or hi > 255:
            raise ConfigError(f"integer pixels must lie in [0, 255], found {_span(lo, hi)}; rescale them to 0..255")
        binary = " (all 0 or 1: nearly black; multiply by 255 if they are binary)" if hi <= 1 else ""
        return x.astype(np.uint8), f"{x.dtype} pixels in {_span(lo, hi)} read as 0..255{binary}"
    x = x.astype(np.promote_types(x.dtype, np.float32), copy=False)  # float16 arithmetic would round
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = x[np.isfinite(x)]
        span = _span(float(finite.min()), float(finite.max())) if finite.size else "nothing"
        bad = "NaN" if np.isnan(x).any() else "inf"
        raise ConfigError(f"float pixels must be finite, found {bad} (the finite values span {span})")
    if lo >= 0 and hi <= 1:
        return _round(x * 255.0), f"float range {_span(lo, hi)} within [0, 1]: x 255"
    if lo >= -1 and hi <= 1:
        return _round((x + 1.0) * 127.5), f"float range {_span(lo, hi)} within [-1, 1]: (x + 1) x 127.5"
    if lo >= 0 and hi <= 255:
        return _round(x), f"float range {_span(lo, hi)} within [0, 255]: as they are"
    raise ConfigError(f"float pixels must lie in [0, 1], [-1, 1] or [0, 255], found {_span(lo, hi)}")


def _round(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Images and vectors


def _as_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHW":
        return x[..., None]  # (N, H, W, 1)
    return x.transpose(0, 2, 3, 1) if layout == "NCHW" else x  # (N, H, W, C)


def _images(x: np.ndarray, layout: str, resolution: int, fit: str, channels: int | str, path: str) -> tuple:
    """uint8 NCHW at the chosen resolution and channels, and the report entries saying why."""
    nhwc = _as_nhwc(x, layout)  # (N, H, W, C)
    n, h, w, c = nhwc.shape
    if resolution:
        check_upscale(resolution, max(h, w), path)
        res, res_why = resolution, "set by data.resolution"
    else:
        res, res_why = auto_resolution(min(h, w))
    chans = c if channels == "auto" else channels
    chans_why = "the array's own channels (data.channels to change)" if channels == "auto" else "set by data.channels"
    nhwc = convert_channels(nhwc, chans)  # (N, H, W, chans)
    upscaled = False
    if (h, w) == (res, res):
        out = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))  # (N, C, R, R)
    else:
        out = np.empty((n, chans, res, res), np.uint8)  # (N, C, R, R)
        for i in range(n):
            out[i], upscaled = fit_square(nhwc[i], res, fit)
    report = {
        "resolution": res, "resolution_reason": res_why, "channels": chans, "channels_reason": chans_why, "fit": fit,
        "nonsquare": n if h != w else 0, "upscaled": n if upscaled else 0,
        "sides": {"min": min(h, w), "median": min(h, w), "max": max(h, w)},
    }
    return out, report


def load_array(
    path: str | Path,
    *,
    labels_key: str | None = None,
    resolution: int = 0,
    fit: str = "crop",
    channels: int | str = "auto",
) -> LoadedImages | LoadedVectors:
    """Read a .npy or .npz: (N,) or (N, D) -> LoadedVectors; (N, H, W), NHWC or NCHW -> LoadedImages (uint8).

    In an .npz the data is the array named x, images, data or arr_0, or the only non-label array; labels
    come from `labels_key`, else `labels` or `y`. Images take the resolution, fit and channels options of
    load_image_folder; float pixels in [0, 1], [-1, 1] or [0, 255] are scaled to 0..255.
    """
    t0 = time.perf_counter()
    channels = check_options(resolution, fit, channels)
    full = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.exists(full):
        raise ConfigError(f"data path {full} does not exist")
    x, y, x_key, y_key = _read(full, labels_key)
    what = x_key if x_key == "the array" else f"array {x_key!r}"
    if x.dtype.hasobject or x.dtype.names:
        raise ConfigError(f"{full}: {what} must be a plain numeric array, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ConfigError(f"{full}: {what} holds no rows (shape {x.shape})")
    layout, note = image_layout(x.shape)
    y = None if y is None else _check_labels(y, x.shape[0], full, y_key)
    class_names = [] if y is None else [str(i) for i in range(int(y.max()) + 1)]
    counts = {} if y is None else dict(zip(class_names, np.bincount(y).tolist(), strict=True))
    warnings = [note] if note else []
    warnings += [f"class {k} has no examples" for k, v in counts.items() if v == 0]
    base = {"source": full, "kind": Path(full).suffix.lstrip(".").lower(), "key": x_key, "labels_key": y_key,
            "dtype": str(x.dtype), "shape": list(x.shape), "layout": layout, "classes": counts, "cache": "off",
            "cache_path": None, "warnings": warnings}
    if layout == "vectors":
        vec = x.reshape(x.shape[0], -1)  # (N,) -> (N, 1)
        if not (np.issubdtype(vec.dtype, np.number) or vec.dtype == np.bool_) or np.iscomplexobj(vec):
            raise ConfigError(f"{full}: {what} must hold real numbers, got {vec.dtype}")
        vec = np.ascontiguousarray(vec, dtype=np.float32)
        if not np.isfinite(vec).all():
            raise ConfigError(f"{full}: {what} holds NaN or inf values")
        report = {**base, "rows": vec.shape[0], "dim": vec.shape[1], "seconds": time.perf_counter() - t0}
        return LoadedVectors(vec, y, full, cache.content_sha256(vec, y), report, class_names)
    pixels, range_note = to_uint8(x)
    out, image_report = _images(pixels, layout, resolution, fit, channels, full)
    out.flags.writeable = False
    report = {**base, **image_report, "range": range_note, "decoded": out.shape[0], "found": out.shape[0],
              "skipped": 0, "seconds": time.perf_counter() - t0}
    return LoadedImages(out, y, class_names, full, cache.content_sha256(out, y), report)
