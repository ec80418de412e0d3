"""The points family: vectors of any size (N, D): the toy distributions and user arrays of vectors.

Pictured as a histogram (D = 1), a scatter plot (D = 2) or a scatter of the first two coordinates;
measured with distribution distances (W1, KS, MMD, energy, moments) and, when the modes are known,
the mode protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.family import Family, _bad_suffix


class Points(Family):
    name = "points"
    sample_suffixes = (".npy", ".csv", ".png")

    def picture_count(self, cfg) -> int:
        return cfg.train.hist_samples

    def picture(self, samples: torch.Tensor, path: Path, data, cfg, title: str, nrow: int = 0) -> Path:
        from ganforge import viz

        values = samples.float().cpu().numpy()  # (N, D)
        if values.shape[1] == 1:
            target = (cfg.data.mean, cfg.data.std) if data.name == "gaussian-1d" else (None, None)
            return viz.save_histogram(values, path, *target, title)
        real = data.take(torch.arange(min(2000, len(data)))).cpu().numpy()
        centres = data.modes.cpu().numpy() if data.modes is not None else None
        return viz.save_scatter(values[:2500], path, real, centres, title)

    def default_metrics(self, inp: Any) -> list[str]:
        """1D: w1, ks, mmd, moments (+ w1_normal for gaussian-1d); known modes: modes, mmd; else w1, mmd, energy."""
        if inp.fake.shape[1] == 1:
            return ["w1", "ks", "mmd", "moments"] + (["w1_normal"] if inp.normal else [])
        if inp.dataset is not None and inp.dataset.modes is not None:
            return ["modes", "mmd"]
        return ["w1", "mmd", "energy"]

    def write_samples(self, samples, out: Path, data_cfg=None, labels=None, nrow: int = 0, names=None) -> str:
        from ganforge import viz

        if out.suffix == ".png":
            values = samples.numpy()
            if values.shape[1] == 1:
                target = (data_cfg.mean, data_cfg.std) if data_cfg is not None and data_cfg.name == "gaussian-1d" \
                    else (None, None)
                viz.save_histogram(values, out, *target)
            else:
                viz.save_scatter(values, out)
            return f"a picture of {len(samples)} samples to {out}"
        if out.suffix == ".csv":
            out.parent.mkdir(parents=True, exist_ok=True)
            cols = [f"x{i}" for i in range(samples.shape[1])] + (["label"] if labels is not None else [])
            table = samples.numpy().astype(np.float64)
            if labels is not None:
                table = np.concatenate([table, labels.numpy()[:, None]], 1)
            np.savetxt(out, table, delimiter=",", header=",".join(cols), comments="", fmt="%.9g")
            return f"{len(samples)} samples to {out}"
        if out.suffix != ".npy":
            raise _bad_suffix(self, out)
        return super().write_samples(samples, out, data_cfg, labels)


POINTS = Points()
