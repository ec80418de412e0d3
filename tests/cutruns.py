"""A run trained straight and the same run stopped half way then resumed: the weights must be bit-identical."""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge import checkpoint
from ganforge.cli import main


def assert_resume_is_bit_exact(train_argv: list[str], steps: int, folder: Path) -> Path:
    """Train `train_argv` for `steps` into folder/straight, and for steps // 2 into folder/cut then resume it to
    `steps`; every G and D weight must be equal. Returns the resumed run's folder."""
    assert main(train_argv + ["--steps", str(steps), "--out", str(folder / "straight")]) == 0
    assert main(train_argv + ["--steps", str(steps // 2), "--out", str(folder / "cut")]) == 0
    assert main(["train", "--resume", str(folder / "cut"), "--steps", str(steps)]) == 0
    a, _ = checkpoint.load(folder / "straight" / "checkpoint.safetensors")
    b, _ = checkpoint.load(folder / "cut" / "checkpoint.safetensors")
    assert [k for k in a if k.startswith("g.")]
    for key in a:
        if key.startswith(("g.", "d.")):
            assert torch.equal(a[key], b[key]), key
    return folder / "cut"
