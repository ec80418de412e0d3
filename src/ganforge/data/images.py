"""The user's own images: a folder or .zip decoded once into uint8 (N, C, H, W), cached on disk.

`load_image_folder` reads PNG, JPEG, WebP, BMP and GIF (first frame) files in a deterministic order,
brings every image to one channel count and one square resolution, skips (and names) unreadable files,
and keeps the result in the dataset cache so the next start reads it memory-mapped in milliseconds.
`to_float` is the one uint8 -> [-1, 1] formula every batch goes through.
"""

from __future__ import annotations

import io
import math
import os
import statistics
import threading
import time
import warnings
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
from PIL import Image, ImageOps

from ganforge.config import ConfigError
from ganforge.data import cache

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")
FITS = ("crop", "resize", "pad")  # crop: centre square; resize: squash; pad: white borders to a square
CHANNEL_CHOICES = ("auto", 1, 3, 4)
LABEL_CHOICES = ("none", "folders")
AUTO_MIN, AUTO_MAX = 8, 128  # bounds of the automatic resolution
MAX_UPSCALE = 4  # an explicit resolution above this many times the largest image side is refused
SKIPPED_SHOWN = 5  # unreadable files named in the report
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
WIDE_GRAY_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # more than 8 bits per pixel
ORIENTATION = 0x0112  # the EXIF tag of camera rotation


@dataclass
class LoadedImages:
    """Images as uint8 (N, C, H, W), optional labels, and a report of how they were read."""

    x: np.ndarray  # uint8 (N, C, H, W), C in {1, 3, 4}; read-only (a np.memmap of the cache after a hit)
    y: np.ndarray | None  # int64 (N,) class indices, or None
    class_names: list[str]  # label index -> name ([] when unlabelled)
    source: str  # the folder, zip or array file, absolute
    sha256: str  # content hash of x (and y): identical pixels -> identical hash
    report: dict[str, Any] = field(default_factory=dict)  # what was found, skipped, chosen and why

    def __len__(self) -> int:
        return self.x.shape[0]

    def describe(self) -> list[str]:
        """The report as human log lines."""
        return describe_report(self.report)


# --------------------------------------------------------------------------------------------------
# Pixels: one image at a time, as uint8 (H, W, c) numpy arrays


def to_float(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1] as x / 127.5 - 1 (the one formula for every batch)."""
    if x.dtype not in (np.uint8, torch.uint8):
        raise TypeError(f"to_float expects uint8 pixels, got {x.dtype}")
    if isinstance(x, np.ndarray):
        with warnings.catch_warnings():  # a read-only memmap: torch warns, but nothing writes to it
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(x)
    return x.to(torch.float32) / 127.5 - 1.0


def composite_on_white(a: np.ndarray) -> np.ndarray:
    """(..., c + 1) uint8 with alpha last -> (..., c) over a white background, rounded to nearest."""
    alpha = a[..., -1:].astype(np.uint32)
    colour = a[..., :-1].astype(np.uint32)
    return ((colour * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (..., 1) gray with ITU-R 601 weights, bit-exact with Pillow's convert("L")."""
    r, g, b = (rgb[..., i : i + 1].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def convert_channels(a: np.ndarray, channels: int) -> np.ndarray:
    """(..., c) uint8, c = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA -> (..., channels); alpha goes on white unless kept."""
    c = a.shape[-1]
    if c in (2, 4) and channels != 4:
        a, c = composite_on_white(a), c - 1
    if channels == 1 and c == 3:
        return luma(a)
    if channels == 3 and c == 1:
        return np.repeat(a, 3, axis=-1)
    if channels == 4 and c != 4:
        opaque = np.full(a.shape[:-1] + (1,), 255, np.uint8)
        gray, alpha = (a[..., :1], a[..., 1:]) if c == 2 else (a[..., :1], opaque)
        return np.concatenate([gray, gray, gray, alpha] if c in (1, 2) else [a, opaque], axis=-1)
    return a


def _gray_palette(im: Image.Image) -> bool:
    palette = np.asarray(im.getpalette() or [0, 0, 0]).reshape(-1, 3)
    return bool((palette == palette[:, :1]).all())


def is_gray(im: Image.Image) -> bool:
    """Whether an opened image stores gray pixels only (gray modes, or a palette of grays)."""
    return im.mode in GRAY_MODES or (im.mode in ("P", "PA") and _gray_palette(im))


def has_alpha(im: Image.Image) -> bool:
    """Whether an opened image has transparency (an alpha band or a palette transparency entry)."""
    return im.mode in ("LA", "La", "RGBA", "RGBa", "PA") or (im.mode == "P" and "transparency" in im.info)


def native_pixels(im: Image.Image) -> np.ndarray:
    """Decode an image to uint8 (H, W, c): c = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (16-bit gray rounded)."""
    if im.mode in WIDE_GRAY_MODES:  # 16-bit gray: v / 257 rounded maps 0..65535 onto 0..255 exactly
        wide = np.clip(np.rint(np.asarray(im, dtype=np.float64)), 0, 65535).astype(np.uint32)
        return ((wide + 128) // 257).astype(np.uint8)[..., None]
    if im.mode in ("1", "L"):
        return np.asarray(im.convert("L"))[..., None]
    if im.mode in ("LA", "La"):
        return np.asarray(im.convert("LA"))
    if im.mode in ("P", "PA"):
        alpha = has_alpha(im)
        rgb = np.asarray(im.convert("RGBA" if alpha else "RGB"))
        if _gray_palette(im):
            return rgb[..., [0, 3]] if alpha else rgb[..., :1]
        return rgb
    if im.mode in ("RGBA", "RGBa"):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))  # RGB, CMYK, YCbCr, LAB, HSV, RGBX


def fit_square(a: np.ndarray, resolution: int, fit: str) -> tuple[np.ndarray, bool]:
    """uint8 (H, W, C) -> (C, resolution, resolution) by `fit`; LANCZOS down, BICUBIC up; says if upscaled."""
    h, w, c = a.shape
    im = Image.fromarray(a[..., 0] if c == 1 else a)  # mode L, RGB or RGBA
    if fit == "pad" and w != h:  # white borders (transparent white when alpha is kept)
        side = max(w, h)
        canvas = Image.new(im.mode, (side, side), {1: 255, 3: (255, 255, 255), 4: (255, 255, 255, 0)}[c])
        canvas.paste(im, ((side - w) // 2, (side - h) // 2))
        im, w, h = canvas, side, side
    if fit == "crop":
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    else:
        box = (0, 0, w, h)
    upscaled = min(box[2] - box[0], box[3] - box[1]) < resolution
    if box[2] - box[0] == resolution and box[3] - box[1] == resolution:
        im = im.crop(box) if box != (0, 0, w, h) else im
    elif upscaled:
        im = im.resize((resolution, resolution), Image.Resampling.BICUBIC, box=box)
    else:  # reducing_gap: box-reduce first when shrinking 6x or more, then LANCZOS (same look, much faster)
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    out = np.asarray(im).reshape(resolution, resolution, c)  # (R, R, C)
    return out.transpose(2, 0, 1), upscaled  # (C, R, R)


def decode_image(im: Image.Image, resolution: int, fit: str, channels: int) -> tuple[np.ndarray, bool]:
    """An opened image -> uint8 (channels, resolution, resolution), camera rotation applied; says if upscaled."""
    if im.format == "JPEG":  # let libjpeg scale down by 2/4/8 while staying >= the resolution
        im.draft(None, (resolution, resolution))
    if im.getexif().get(ORIENTATION, 1) != 1:
        im = ImageOps.exif_transpose(im)
    return fit_square(convert_channels(native_pixels(im), channels), resolution, fit)


def auto_resolution(median_side: float) -> tuple[int, str]:
    """The smallest power of two >= the median shorter side, within [AUTO_MIN, AUTO_MAX], and why."""
    res = AUTO_MIN
    while res < median_side and res < AUTO_MAX:
        res *= 2
    if median_side > AUTO_MAX:
        why = f"the median side {median_side:g} is above the automatic cap {AUTO_MAX}"
    elif median_side < AUTO_MIN:
        why = f"the median side {median_side:g} is below the automatic minimum {AUTO_MIN}"
    else:
        why = f"the smallest power of two >= the median side {median_side:g}"
    return res, f"{why} (data.resolution to change)"


def check_upscale(resolution: int, largest_side: int, source: str) -> None:
    """Refuse an explicit resolution more than MAX_UPSCALE x the largest image side: it would be noise."""
    if resolution > MAX_UPSCALE * largest_side:
        suggest = 2 ** math.ceil(math.log2(largest_side))
        raise ConfigError(
            f"data.resolution={resolution} is more than {MAX_UPSCALE}x the largest image side ({largest_side} px) "
            f"in {source}: upscaling that far only adds blur; use data.resolution={suggest} (or 0 to choose from "
            "the images)"
        )


def check_options(resolution: int, fit: str, channels: int | str) -> int | str:
    """Validate the decode options (one-line ConfigErrors naming the key); returns channels as "auto" or an int."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 0:
        raise ConfigError(f"data.resolution must be a whole number of pixels >= 0 (0 = automatic), got {resolution!r}")
    if fit not in FITS:
        raise ConfigError(f"data.fit must be one of {', '.join(FITS)}, got {fit!r}")
    normal = channels if channels == "auto" else int(channels) if str(channels) in ("1", "3", "4") else None
    if normal is None:
        raise ConfigError(f"data.channels must be auto, 1, 3 or 4, got {channels!r}")
    return normal


# --------------------------------------------------------------------------------------------------
# Finding the files: a folder (recursive) or a zip


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _path_order(name: str) -> list[str]:
    return name.split("/")  # folder by folder, so each subfolder's files stay together


@dataclass
class ImageListing:
    """The image files of a folder or zip: names relative to the root ("/"-separated), sorted."""

    path: str  # absolute
    kind: str  # "folder" or "zip"
    names: list[str]  # image files, sorted folder by folder
    sizes: dict[str, int]  # name -> bytes
    looked_at: int  # files seen (hidden ones aside), images or not
    example_other: str  # one non-image file seen, for the "no images" message
    fingerprint: Any  # what the cache key hashes: names with sizes and mtimes (zip: CRCs)
    _zip: zipfile.ZipFile | None = None
    _members: dict[str, str] = field(default_factory=dict)  # zip: name -> member name
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, name: str) -> Image.Image:
        """Open one image lazily (header only) with Pillow."""
        if self._zip is None:
            return Image.open(os.path.join(self.path, name))
        with self._lock:
            data = self._zip.read(self._members[name])
        return Image.open(io.BytesIO(data))

    def close(self) -> None:
        """Close the zip, if any."""
        if self._zip is not None:
            self._zip.close()


def _list_folder(root: str) -> ImageListing:
    names, sizes, stats, looked, other = [], {}, {}, 0, ""
    st = os.stat(root)
    seen, stack = {(st.st_dev, st.st_ino)}, [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel)))
        except OSError:
            continue
        for e in entries:
            if _hidden(e.name):
                continue
            name = f"{rel}/{e.name}" if rel else e.name
            try:
                if e.is_dir():  # follows links; a link back up the tree is visited once
                    st = e.stat()
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        stack.append(name)
                    continue
                looked += 1
                if not _is_image_name(e.name):
                    other = other or name
                    continue
                st = e.stat()
            except OSError:  # a dangling link
                continue
            names.append(name)
            sizes[name], stats[name] = st.st_size, st.st_mtime_ns
    names.sort(key=_path_order)
    fingerprint = [[n, sizes[n], stats[n]] for n in names]
    return ImageListing(root, "folder", names, sizes, looked, other, fingerprint)


def _list_zip(path: str) -> ImageListing:
    try:
        zf = zipfile.ZipFile(path)
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ConfigError(f"{path} is not a readable zip file ({e})") from None
    members, looked, other = {}, 0, ""
    for info in infos:
        name = info.filename.replace("\\", "/")
        if any(_hidden(part) for part in name.split("/")):
            continue
        looked += 1
        if _is_image_name(name):
            members[name] = info
        else:
            other = other or name
    top = {n.split("/", 1)[0] for n in members}
    if len(top) == 1 and all(n.count("/") >= 2 for n in members):  # a zipped folder: its name is no class
        members = {n.split("/", 1)[1]: info for n, info in members.items()}
    names = sorted(members, key=_path_order)
    st = os.stat(path)
    fingerprint = {
        "zip": [st.st_size, st.st_mtime_ns],
        "members": [[members[n].filename, members[n].file_size, members[n].CRC] for n in names],
    }
    sizes = {n: members[n].file_size for n in names}
    return ImageListing(path, "zip", names, sizes, looked, other, fingerprint, zf,
                        {n: members[n].filename for n in names})


def list_images(path: str | Path) -> ImageListing:
    """The image files under a folder (recursively) or in a .zip; one-line ConfigError if there are none."""
    full = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.exists(full):
        raise ConfigError(f"data path {full} does not exist")
    if os.path.isdir(full):
        listing = _list_folder(full)
    elif full.lower().endswith(".zip"):
        listing = _list_zip(full)
    else:
        raise ConfigError(f"data path {full} is neither a folder nor a .zip of images")
    if not listing.names:
        listing.close()
        seen = f", e.g. {listing.example_other}" if listing.example_other else ""
        raise ConfigError(
            f"no images in {full}: looked at {listing.looked_at:,} files{seen}; "
            f"accepted extensions: {', '.join(IMAGE_EXTENSIONS)}"
        )
    return listing


def folder_labels(listing: ImageListing, labels: str) -> tuple[list[str], np.ndarray | None]:
    """labels="folders": class names (sorted first-level subfolders) and each file's class index."""
    if labels not in LABEL_CHOICES:
        raise ConfigError(f"data.labels must be one of {', '.join(LABEL_CHOICES)}, got {labels!r}")
    if labels == "none":
        return [], None
    loose = [n for n in listing.names if "/" not in n]
    if loose:
        raise ConfigError(
            f'data.labels="folders" needs every image in a class subfolder, but {loose[0]} sits directly in '
            f"{listing.path} ({len(loose):,} such files)"
        )
    classes = sorted({n.split("/", 1)[0] for n in listing.names})
    if len(classes) < 2:
        raise ConfigError(
            f'data.labels="folders" needs at least 2 class subfolders with images in {listing.path}, '
            f"found 1 ({classes[0]})"
        )
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[n.split("/", 1)[0]] for n in listing.names], dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# Decoding a listing: read headers, choose resolution and channels, decode in parallel


@dataclass
class _Header:
    w: int
    h: int
    mode: str
    gray: bool
    alpha: bool


def _reason(e: BaseException) -> str:
    """One short phrase for why a file could not be read."""
    if isinstance(e, PIL.UnidentifiedImageError):
        return "not a recognised image"
    if isinstance(e, Image.DecompressionBombError):
        return "too many pixels (Pillow's decompression-bomb limit)"
    if isinstance(e, PermissionError):
        return "permission denied"
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "truncated" in text.lower():
        return "truncated image"
    return f"{type(e).__name__}: {text}"[:100]


def _guard(listing: ImageListing, fn: Callable[[Image.Image], Any]) -> Callable[[str], Any]:
    """fn(opened image) for a name, or the reason (a str) the file could not be read."""

    def run(name: str) -> Any:
        if listing.sizes[name] == 0:
            return "empty file"
        try:
            with listing.open(name) as im:
                return fn(im)
        except Exception as e:  # any decoder failure skips that one file
            return _reason(e)

    return run


def _header(im: Image.Image) -> _Header:
    return _Header(im.size[0], im.size[1], im.mode, is_gray(im), has_alpha(im))


def _choose_channels(channels: int | str, ok: list[tuple[str, _Header]]) -> tuple[int, str]:
    if channels != "auto":
        return int(channels), "set by data.channels"
    colour = [(n, h) for n, h in ok if not h.gray]
    if not colour:
        return 1, "every image is grayscale (data.channels to change)"
    name, head = colour[0]
    are = "images are" if len(colour) > 1 else "image is"
    return 3, f"{len(colour):,} {are} in colour, e.g. {name} ({head.mode}) (data.channels to change)"


def _unreadable(listing: ImageListing, skipped: dict[str, str]) -> ConfigError:
    name = min(skipped, key=_path_order)
    return ConfigError(f"none of the {len(listing.names):,} images in {listing.path} could be read "
                       f"(e.g. {name}: {skipped[name]})")


def _choose_resolution(resolution: int, headers: list[_Header], source: str) -> tuple[int, str]:
    if resolution:
        check_upscale(resolution, max(max(h.w, h.h) for h in headers), source)
        return resolution, "set by data.resolution"
    return auto_resolution(statistics.median(min(h.w, h.h) for h in headers))


def _decode_listing(
    listing: ImageListing, resolution: int, fit: str, channels: int | str, file_labels: np.ndarray | None, workers: int
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Decode every readable image of a listing: (x uint8 (N, C, R, R), y, report)."""
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        read = dict(zip(listing.names, pool.map(_guard(listing, _header), listing.names), strict=True))
        skipped = {n: h for n, h in read.items() if isinstance(h, str)}
        ok = [n for n in listing.names if n not in skipped]  # headers read: sizes and modes known
        if not ok:
            raise _unreadable(listing, skipped)
        headers = [read[n] for n in ok]
        res, res_why = _choose_resolution(resolution, headers, listing.path)
        chans, chans_why = _choose_channels(channels, [(n, read[n]) for n in ok])
        x = np.empty((len(ok), chans, res, res), np.uint8)  # (N, C, R, R)
        keep, upscaled = np.zeros(len(ok), bool), 0
        decode = _guard(listing, lambda im: decode_image(im, res, fit, chans))
        for j, out in enumerate(pool.map(decode, ok)):
            if isinstance(out, str):  # the header read but the pixels did not (a truncated file)
                skipped[ok[j]] = out
                continue
            x[j], keep[j] = out[0], True
            upscaled += out[1]
    if not keep.any():
        raise _unreadable(listing, skipped)
    x = x if keep.all() else x[keep]
    rows = np.flatnonzero([not isinstance(read[n], str) for n in listing.names])[keep]  # listing index of each x
    y = None if file_labels is None else file_labels[rows]
    sides = [min(h.w, h.h) for h in headers]
    shown = sorted(skipped, key=_path_order)[:SKIPPED_SHOWN]
    report = {
        "kind": listing.kind, "found": len(listing.names), "looked_at": listing.looked_at,
        "decoded": int(keep.sum()), "skipped": len(skipped), "skipped_files": [[n, skipped[n]] for n in shown],
        "resolution": res, "resolution_reason": res_why, "channels": chans, "channels_reason": chans_why,
        "fit": fit, "nonsquare": sum(h.w != h.h for h in headers), "upscaled": int(upscaled),
        "transparent": sum(h.alpha for h in headers),
        "sides": {"min": min(sides), "median": statistics.median(sides), "max": max(sides)},
    }
    return x, y, report


def load_image_folder(
    path: str | Path,
    *,
    resolution: int = 0,
    fit: str = "crop",
    channels: int | str = "auto",
    labels: str = "none",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    workers: int = 0,
) -> LoadedImages:
    """Decode a folder (recursive) or .zip of images into uint8 (N, C, R, R), from the cache when it is current.

    Args:
        resolution: side of the square output; 0 = the smallest power of two >= the median shorter side,
            within [8, 128].
        fit: "crop" (centre square), "resize" (squash) or "pad" (white borders) for non-square images.
        channels: "auto" (1 if every image is gray, else 3), or 1, 3, 4 (4 keeps transparency).
        labels: "none", or "folders" (first-level subfolders are the classes, sorted by name).
        cache_dir: where decoded arrays are kept (default ~/.cache/ganforge/datasets).
        workers: decoding threads (0 = up to 8, one per core).
    """
    t0 = time.perf_counter()
    channels = check_options(resolution, fit, channels)
    listing = list_images(path)
    try:
        class_names, file_labels = folder_labels(listing, labels)
        options = {"resolution": resolution, "fit": fit, "channels": channels, "labels": labels}
        key = cache.cache_key(listing.path, listing.fingerprint, options, {"pillow": PIL.__version__})
        folder = Path(os.path.abspath(Path(cache_dir).expanduser())) if cache_dir else cache.default_cache_dir()
        hit = cache.read_entry(folder, key) if use_cache else None
        if hit is not None:
            report = {**hit.meta["report"], "cache": "hit", "cache_path": str(hit.path),
                      "seconds": time.perf_counter() - t0}
            return LoadedImages(hit.x, hit.y, hit.meta["class_names"], listing.path, hit.meta["sha256"], report)
        x, y, report = _decode_listing(listing, resolution, fit, channels, file_labels, workers)
    finally:
        listing.close()
    report.update(source=listing.path, classes=_class_counts(class_names, y), warnings=_warnings(class_names, y))
    sha = cache.content_sha256(x, y)
    report.update(decode_seconds=time.perf_counter() - t0, cache="off", cache_path=None)
    if use_cache:
        try:
            same = {"source": listing.path, "options": options}  # an older decode of this folder: replaced
            meta = {"class_names": class_names, "report": report, "sha256": sha, **same}
            written = cache.write_entry(folder, key, x, y, meta)
            report.update(cache="miss", cache_path=str(written), replaced=cache.remove_stale(folder, key, same))
        except OSError as e:
            why = f"could not write to the cache folder {folder} ({e.strerror or e})"
            report["warnings"].append(f"{why}; decoding again at every start")
    x.flags.writeable = False  # as read-only as the cache's memmap, so no caller comes to rely on writing
    report["seconds"] = time.perf_counter() - t0
    return LoadedImages(x, y, class_names, listing.path, sha, report)


def _class_counts(class_names: list[str], y: np.ndarray | None) -> dict[str, int]:
    if y is None:
        return {}
    counts = np.bincount(y, minlength=len(class_names))
    return {name: int(c) for name, c in zip(class_names, counts, strict=True)}


def _warnings(class_names: list[str], y: np.ndarray | None) -> list[str]:
    empty = [n for n, c in _class_counts(class_names, y).items() if c == 0]
    return [f"class {n} has no readable images" for n in empty]


# --------------------------------------------------------------------------------------------------
# The report as log lines


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 10 else f"{s:.0f} s"


def describe_report(report: dict[str, Any]) -> list[str]:
    """Human log lines for a load report (images from a folder, zip or array)."""
    n, lines = report.get("decoded", 0), []
    shape = f"{report.get('channels')}x{report.get('resolution')}x{report.get('resolution')}"
    if report.get("cache") == "hit":
        lines.append(f"read {n:,} images ({shape}) from the cache in {_seconds(report['seconds'])} "
                     f"({report['cache_path']})")
    elif report.get("kind") in ("folder", "zip"):
        cached = f"; cached in {report['cache_path']}" if report.get("cache") == "miss" else " (cache off)"
        lines.append(f"decoded {n:,} images ({shape}) from {report['source']} in {_seconds(report['seconds'])}"
                     f"{cached}")
    else:
        lines.append(f"read {n:,} images ({shape}) from {report['source']}: {report['range']}")
    if report.get("skipped"):
        named = "; ".join(f"{name} ({why})" for name, why in report["skipped_files"])
        more = ", ..." if report["skipped"] > len(report["skipped_files"]) else ""
        lines.append(f"skipped {report['skipped']:,} unreadable files: {named}{more}")
    lines.append(f"resolution {report['resolution']}: {report['resolution_reason']}")
    lines.append(f"channels {report['channels']}: {report['channels_reason']}")
    if report.get("nonsquare"):
        how = {"crop": "centre-cropped", "resize": "squashed", "pad": "padded with white"}[report["fit"]]
        lines.append(f"{report['nonsquare']:,} non-square images {how} to a square (data.fit to change)")
    if report.get("upscaled"):
        images = "images" if report["upscaled"] > 1 else "image"
        lines.append(f"upscaled {report['upscaled']:,} {images} smaller than {report['resolution']} px")
    if report.get("transparent") and report["channels"] != 4:
        images = "images" if report["transparent"] > 1 else "image"
        lines.append(f"{report['transparent']:,} transparent {images} composited on white "
                     "(data.channels=4 keeps alpha)")
    if report.get("classes"):
        shown = ", ".join(f"{k} ({v:,})" for k, v in list(report["classes"].items())[:10])
        more = ", ..." if len(report["classes"]) > 10 else ""
        lines.append(f"{len(report['classes'])} classes: {shown}{more}")
    lines.extend(f"warning: {w}" for w in report.get("warnings", []))
    return lines
