"""Optional TensorBoard logging of a run: scalars, pictures and the resolved config, under RUN/tensorboard/.

`open_writer(run_dir)` gives a `TensorBoardWriter` when the `tensorboard` package is importable and a
`NullWriter` (same methods, does nothing) otherwise, so the training loop never checks which it has.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

# metrics.jsonl key -> TensorBoard tag; grouping by prefix puts related curves on one dashboard row.
TAGS = {
    "loss_d": "loss/d",
    "loss_g": "loss/g",
    "d_real": "D/real D(x)",
    "d_fake": "D/fake D(G(z))",
    "grad_norm_d": "grad_norm/d",
    "grad_norm_g": "grad_norm/g",
    "lr_d": "lr/d",
    "lr_g": "lr/g",
    "steps_per_s": "speed/steps_per_s",
    "diversity": "samples/diversity",
    "duplicates": "samples/duplicates",
}
SKIP = {"step", "time"}  # bookkeeping, not curves


def tensorboard_available() -> bool:
    """True when the `tensorboard` package (needed by torch.utils.tensorboard) can be imported."""
    return importlib.util.find_spec("tensorboard") is not None


def flatten_scalars(values: dict, prefix: str = "") -> dict[str, float]:
    """Numeric entries of a log record as {tag: value}; nested dicts become 'outer/inner' tags."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if key in SKIP and not prefix:
            continue
        if isinstance(value, dict):
            out |= flatten_scalars(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            out[prefix + key if prefix else TAGS.get(key, key)] = float(value)
    return out


class NullWriter:
    """Stands in for `TensorBoardWriter` when logging is off or tensorboard is not installed."""

    log_dir: Path | None = None

    def scalars(self, step: int, values: dict) -> None:
        pass

    def image(self, step: int, tag: str, path: str | Path) -> None:
        pass

    def text(self, tag: str, text: str, step: int = 0) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardWriter:
    """Event files under RUN/tensorboard/ (view with `tensorboard --logdir RUN`)."""

    def __init__(self, run_dir: str | Path, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch raises this when the tensorboard package is missing
            raise ImportError("TensorBoard logging needs the tensorboard package: "
                              "pip install tensorboard") from e
        self.log_dir = Path(run_dir) / "tensorboard"
        # purge_step: TensorBoard hides the events of earlier writers at steps >= it (a resumed or rolled-back run)
        self._w = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def scalars(self, step: int, values: dict) -> None:
        """Every number in a log record (losses, D(x), D(G(z)), gradient norms, lrs, eval/* metrics)."""
        for tag, value in flatten_scalars(values).items():
            self._w.add_scalar(tag, value, step)

    def image(self, step: int, tag: str, path: str | Path) -> None:
        """A picture from disk (sample grid, histogram or scatter PNG), shown under `tag` at `step`."""
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))  # (H, W, 3) uint8
        self._w.add_image(tag, pixels, step, dataformats="HWC")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Text such as the resolved config TOML; indented so TensorBoard shows it as a code block."""
        self._w.add_text(tag, "".join("    " + line + "\n" for line in text.splitlines()), step)

    def flush(self) -> None:
        self._w.flush()

    def close(self) -> None:
        self._w.close()


def open_writer(run_dir: str | Path, enabled: bool = True,
                purge_step: int | None = None) -> TensorBoardWriter | NullWriter:
    """A TensorBoard writer for the run, or a `NullWriter` when disabled or tensorboard is missing.

    With `purge_step`, earlier event files' steps from `purge_step` on are hidden (they are being redone).
    """
    if enabled and tensorboard_available():
        return TensorBoardWriter(run_dir, purge_step)
    return NullWriter()
