"""The user's own data from a path: a folder or .zip of images, a .npy/.npz array, a table or a text file.

`load_path(cfg)` reads it with the image or array loader, keeps it in memory as float32 when it fits in
`data.max_memory`, else leaves the uint8 pixels in the memory-mapped cache to be streamed, and records
where it came from and its content hash so eval and resume can check they see the same data.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from ganforge.config import ConfigError
from ganforge.data.arrays import LoadedVectors, load_array
from ganforge.data.base import Dataset
from ganforge.data.images import load_image_folder, to_float
from ganforge.data.images_family import IMAGES
from ganforge.data.points import POINTS

ARRAY_SUFFIXES = (".npy", ".npz")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")  # a .csv with data.column set is text
TEXT_SUFFIXES = (".txt",)


def what_data_accepts() -> str:
    """The one-line description of what --data takes."""
    from ganforge.data import DATASETS

    return (f"a dataset name ({', '.join(DATASETS)}) or a path: a folder or .zip of images "
            "(PNG, JPEG, WebP, BMP, GIF), a .npy/.npz array, a table (.csv, .tsv, .parquet) or a text file (.txt, "
            "one sample per line)")


def load_path(cfg, seed: int = 0, state: dict | None = None) -> Dataset:
    """Read `cfg.path` (a DataConfig) into a Dataset of the images, points, tables or text family.

    `seed` draws the holdout split of tables and text; `state` is a run's saved family state.
    """
    path = os.path.abspath(os.path.expanduser(cfg.path))
    if not os.path.exists(path):
        import difflib

        from ganforge.data import DATASETS

        close = difflib.get_close_matches(cfg.path, list(DATASETS), n=1, cutoff=0.6)
        hint = f" (did you mean the dataset '{close[0]}'?)" if close else ""
        raise ConfigError(f"--data: '{cfg.path}' is not a dataset name and no such file or folder exists{hint}; "
                          f"--data takes {what_data_accepts()}")
    suffix = Path(path).suffix.lower()
    if suffix in TEXT_SUFFIXES or (cfg.column and suffix in TABLE_SUFFIXES):
        from ganforge.data.text_family import load_text_path

        return load_text_path(path, cfg, seed, state)
    if suffix in TABLE_SUFFIXES:
        from ganforge.data.tables_family import load_table_path

        return load_table_path(path, cfg, seed, state)
    channels = cfg.channels if cfg.channels == "auto" else int(cfg.channels)
    if suffix in ARRAY_SUFFIXES:
        loaded = load_array(path, labels_key=cfg.labels_key or None, resolution=cfg.resolution, fit=cfg.fit,
                            channels=channels)
    elif os.path.isdir(path) or suffix == ".zip":
        loaded = load_image_folder(path, resolution=cfg.resolution, fit=cfg.fit, channels=channels,
                                   labels=cfg.labels, cache_dir=cfg.cache or None, use_cache=bool(cfg.cache))
    else:
        raise ConfigError(f"--data: '{cfg.path}' is a file ganforge cannot read; --data takes {what_data_accepts()}")
    y = torch.from_numpy(loaded.y.copy()) if loaded.y is not None else None
    source = {"path": path, "sha256": loaded.sha256, "n": len(loaded)}
    common = {"y": y, "num_classes": len(loaded.class_names) if y is not None else 0,
              "class_names": list(loaded.class_names), "source": source, "report": loaded.describe()}
    name = Path(path).name
    if isinstance(loaded, LoadedVectors):
        return Dataset(name, torch.from_numpy(loaded.x.copy()), family=POINTS, **common)
    floats = loaded.x.size * 4 / 2**30  # GiB as float32
    if floats > cfg.max_memory:
        common["report"] = common["report"] + [
            f"streaming: {floats:.2f} GiB as float32 is over data.max_memory ({cfg.max_memory:g} GiB); "
            "batches are read from the uint8 cache by DataLoader workers"]
        return Dataset(name, None, family=IMAGES, u8=loaded.x, **common)
    return Dataset(name, to_float(loaded.x), family=IMAGES, **common)


def check_same_source(recorded: dict, data: Dataset, what: str) -> None:
    """A run's recorded data source must still hold the same content (eval, resume)."""
    if not recorded:
        return
    if data.source.get("sha256") != recorded.get("sha256"):
        raise ConfigError(f"{what}: the data at {recorded.get('path')} changed since this run was trained "
                          f"(sha256 {recorded.get('sha256', '')[:12]} then, {data.source.get('sha256', '')[:12]} "
                          "now); restore it, or train a new run on the new data")


def save_in_run(data, out: Path) -> str:
    """Data given in memory (a tensor, an array or a Dataset) saved with the run as RUN/data.npz, so eval,
    --resume and eval.every read exactly what training read; returns the path for data.path.

    Images (N, C, H, W) in [-1, 1] are stored as uint8 (the loader's own format); anything else as float32.
    A pandas DataFrame is saved as RUN/data.parquet (RUN/data.csv without pyarrow), lines of text as RUN/data.txt.
    """
    import numpy as np

    from ganforge import fsio

    if _is_frame(data):  # a table: Parquet keeps its dtypes (pyarrow), else CSV
        return _save_table(data, Path(out))
    if isinstance(data, (list, tuple)) and data and all(isinstance(line, str) for line in data):  # lines of text
        if any("\n" in line or "\r" in line for line in data):
            raise ConfigError("data: text samples are lines: a line holds a line break")
        path = Path(out) / "data.txt"
        fsio.atomic_write_text(path, "".join(line + "\n" for line in data))
        return str(path.resolve())
    y = None
    if isinstance(data, Dataset):
        x = data.x if data.x is not None else torch.from_numpy(np.asarray(data.u8))
        y = data.y
    else:
        x = torch.as_tensor(data)
    x = x.detach().cpu()
    if x.ndim == 4 and x.dtype != torch.uint8:
        if x.min() < -1 or x.max() > 1:
            raise ConfigError(f"data: images must be in [-1, 1] (float) or uint8, got values in "
                              f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
        x = ((x + 1) * 127.5).round().to(torch.uint8)
    elif x.ndim != 4:
        x = x.float()
    arrays = {"x": x.numpy()} | ({"labels": y.detach().cpu().numpy()} if y is not None else {})
    path = Path(out) / "data.npz"
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    fsio.atomic_write_bytes(path, buf.getvalue())
    return str(path.resolve())


def _is_frame(data) -> bool:
    """Whether `data` is a pandas DataFrame (without importing pandas for image and array users)."""
    import sys

    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(data, pd.DataFrame)


def _save_table(df, out: Path) -> str:
    """A DataFrame as RUN/data.parquet (dtypes kept), or RUN/data.csv when pyarrow is not installed."""
    from ganforge import fsio

    try:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        path = out / "data.parquet"
        fsio.atomic_write_bytes(path, buf.getvalue())
    except ImportError:
        path = out / "data.csv"
        fsio.atomic_write_text(path, df.to_csv(index=False))
    return str(path.resolve())
