"""Test helpers that write image folders: real MNIST digits (with some JPEGs and broken files) and shapes."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ganforge.data.mnist import mnist_5k_arrays

SHAPES = ("circle", "square", "triangle")
BROKEN = ("truncated", "random-bytes", "empty")  # the kinds of corrupt file, cycled


@dataclass
class WrittenFolder:
    """What a helper wrote: readable images in the loader's order, with their labels and pixels."""

    root: Path
    names: list[str]  # readable images, relative to root, in the loader's order
    labels: np.ndarray  # int64 (N,) class index of each name
    class_names: list[str]  # label index -> name
    pixels: np.ndarray  # digits: uint8 (N, 28, 28), the gray before JPEG or alpha; shapes: (N, H, W, 3) exact
    kinds: list[str] = field(default_factory=list)  # per name: "png", "jpeg", "rgba"
    corrupt: list[str] = field(default_factory=list)  # broken files, relative to root, sorted


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    return mnist_5k_arrays()


def _png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def rgba_digit(gray: np.ndarray) -> np.ndarray:
    """A digit as RGBA (H, W, 4): opaque, except a transparent 7x7 top-left block and a half-alpha one beside it."""
    alpha = np.full(gray.shape, 255, np.uint8)
    alpha[:7, :7], alpha[:7, 7:14] = 0, 128
    return np.dstack([gray, gray, gray, alpha])


def _order(names: list[str]) -> list[int]:
    return sorted(range(len(names)), key=lambda i: names[i].split("/"))


def write_digit_folder(
    root: str | Path,
    n_per_class: int = 500,
    jpeg_share: float = 0.2,
    corrupt: int = 3,
    rgba: int = 1,
    labels: bool = True,
    seed: int = 0,
) -> WrittenFolder:
    """mnist-5k digits as 28x28 gray PNGs (labels: in subfolders 0..9), some JPEGs, broken files, RGBA PNGs."""
    root = Path(root)
    pixels, digit = _digits()  # uint8 (5000, 28, 28), rows sorted by label
    rows = np.concatenate([np.flatnonzero(digit == d)[:n_per_class] for d in range(10)])
    n = len(rows)
    pick = np.random.default_rng(seed).permutation(n)
    n_jpeg = round(jpeg_share * n)
    kinds = np.array(["png"] * n, dtype=object)
    kinds[pick[:n_jpeg]] = "jpeg"
    kinds[pick[n_jpeg : n_jpeg + rgba]] = "rgba"
    names, written = [], []
    for i, row in enumerate(rows):
        folder = root / str(digit[row]) if labels else root
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{i:04d}"
        if kinds[i] == "jpeg":
            Image.fromarray(pixels[row]).save(folder / f"{stem}.jpg", "JPEG", quality=90)
            name, image = f"{stem}.jpg", pixels[row]
        elif kinds[i] == "rgba":
            image = rgba_digit(pixels[row])
            Image.fromarray(image).save(folder / f"{stem}.png", "PNG")
            name = f"{stem}.png"
        else:
            Image.fromarray(pixels[row]).save(folder / f"{stem}.png", "PNG")
            name, image = f"{stem}.png", pixels[row]
        names.append(f"{digit[row]}/{name}" if labels else name)
        written.append(image)
    broken = []
    for k in range(corrupt):
        folder = root / str(k % 10) if labels else root
        folder.mkdir(parents=True, exist_ok=True)
        kind = BROKEN[k % len(BROKEN)]
        data = {"truncated": _png_bytes(pixels[k])[:200], "empty": b"",
                "random-bytes": np.random.default_rng(k).bytes(300)}[kind]
        (folder / f"broken_{k}.png").write_bytes(data)
        broken.append(f"{k % 10}/broken_{k}.png" if labels else f"broken_{k}.png")
    order = _order(names)
    gray = [w if w.ndim == 2 else w[..., 0] for w in written]  # the RGBA digits' gray, for shape and labels
    return WrittenFolder(
        root,
        [names[i] for i in order],
        digit[rows][order].astype(np.int64),
        [str(d) for d in range(10)] if labels else [],
        np.stack([gray[i] for i in order]),
        [str(kinds[i]) for i in order],
        sorted(broken, key=lambda s: s.split("/")),
    )


def write_shapes_folder(
    root: str | Path, n: int, size: int = 64, seed: int = 0, labels: bool = False
) -> WrittenFolder:
    """n RGB PNGs of one coloured circle, square or triangle on a random background (labels: shape subfolders)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names, kinds, images = [], [], []
    for i in range(n):
        kind = int(rng.integers(3))
        bg, fg = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
        im = Image.new("RGB", (size, size), bg)
        r = float(rng.uniform(0.2, 0.4) * size)
        cx, cy = (float(v) for v in rng.uniform(r, size - r, 2))
        draw = ImageDraw.Draw(im)
        if SHAPES[kind] == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
        elif SHAPES[kind] == "square":
            draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
        name = f"{SHAPES[kind]}/{i:04d}.png" if labels else f"{i:04d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / name, "PNG")
        names.append(name)
        kinds.append(kind)
        images.append(np.asarray(im))
    order = _order(names)
    return WrittenFolder(
        root,
        [names[i] for i in order],
        np.array([kinds[i] for i in order], dtype=np.int64),
        list(SHAPES) if labels else [],
        np.stack([images[i] for i in order]),
        ["png"] * n,
    )
