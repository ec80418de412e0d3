"""One entry per metric: its name, the data families it applies to, the values it reports, which way is
better, its fixed parameters and how it is computed from an evaluation's inputs.

`ganforge eval --metrics`, `eval.metrics`, `eval.best` and the provenance all read this table, so a new
metric is one `register(...)` call here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ganforge.metrics import features as F
from ganforge.metrics import images, lowdim, modes, tables, text
from ganforge.metrics.swd import swd


@dataclass
class Inputs:
    """Generated and real samples for one evaluation, and the image features computed from them once."""

    fake: torch.Tensor  # (n, *shape)
    real: torch.Tensor  # (n_real, *shape)
    family: str  # data family name: points, images, ...
    seed: int
    dataset: Any = None  # the real Dataset when known (modes, labels)
    normal: tuple[float, float] | None = None  # gaussian-1d: the target N(mean, std)
    labels: torch.Tensor | None = None  # (n,) the class each generated sample was requested as (conditional runs)
    num_classes: int = 0  # the classes a conditional run's G takes (0: not conditional)
    extractor: F.Extractor | None = None
    cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def feats(self, which: str) -> torch.Tensor:
        """Features of the 'fake' or 'real' images, computed on first use."""
        if which not in self.cache:
            self.cache[which] = self.extractor.features(getattr(self, which))
        return self.cache[which]

    def logits(self, which: str) -> torch.Tensor:
        """The digit classifier's logits (N, 10) for the 'fake' or 'real' images, computed on first use."""
        key = f"logits_{which}"
        if key not in self.cache:
            self.cache[key] = self.extractor.logits(getattr(self, which))
        return self.cache[key]


@dataclass
class Metric:
    """A metric as `ganforge eval` knows it."""

    name: str  # as given to --metrics
    families: tuple[str, ...]  # data families it applies to
    run: Callable[[Inputs], dict]  # inputs -> named values
    fn: Callable  # the metric function itself (its module and name go in the provenance)
    higher: dict[str, bool]  # scalar value name -> True when larger is better (eval.best can pick these)
    params: dict[str, Any] = field(default_factory=dict)  # fixed parameters, recorded in the provenance
    features: bool = False  # needs an image feature extractor
    requires: Callable[[Inputs], str | None] = lambda inp: None  # why it cannot run on these inputs, or None


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    METRICS[metric.name] = metric
    return metric


def providers(value: str) -> list[str]:
    """Metric names that report the scalar `value` (e.g. 'recall' -> ['pr'])."""
    return [m.name for m in METRICS.values() if value in m.higher]


def higher_is_better(value: str) -> bool:
    """Whether a larger `value` is better; unknown values count as smaller-is-better."""
    return any(m.higher.get(value, False) for m in METRICS.values())


# --------------------------------------------------------------------------------------------------
# Points (vectors of any size)

P = ("points",)
register(Metric("w1", P, lambda c: {"w1": lowdim.w1(c.fake, c.real)}, lowdim.w1, {"w1": False}))
register(Metric("w1_normal", P, lambda c: {"w1_normal": lowdim.w1_normal(c.fake, *c.normal)}, lowdim.w1_normal,
                {"w1_normal": False},
                requires=lambda c: None if c.normal else "w1_normal needs the gaussian-1d dataset as the real data"))
register(Metric("ks", P, lambda c: {"ks": lowdim.ks(c.fake, c.real)}, lowdim.ks, {"ks": False}))
register(Metric("mmd", P, lambda c: {"mmd": lowdim.mmd_rbf(c.fake, c.real, seed=c.seed)}, lowdim.mmd_rbf,
                {"mmd": False}, {"max_n": 2000, "bandwidth": "median heuristic"}))
register(Metric("energy", P, lambda c: {"energy": lowdim.energy_distance(c.fake, c.real, seed=c.seed)},
                lowdim.energy_distance, {"energy": False}, {"max_n": 2000}))


def _moments(c: Inputs) -> dict:
    out = lowdim.moments_error(c.fake, c.real)
    if len(out["mean_error"]) == 1:
        return {"mean_error": out["mean_error"][0], "std_error": out["std_error"][0]}
    return out


register(Metric("moments", P, _moments, lowdim.moments_error, {"mean_error": False, "std_error": False}))

MODES_PARAMS = {"radius": "3 std", "threshold": 0.01}


def _modes(c: Inputs) -> dict:
    ds = c.dataset
    out = modes.mode_stats(c.fake, ds.modes, ds.mode_std, threshold=MODES_PARAMS["threshold"])
    return {"modes_covered": out["modes_covered"], "modes_total": len(ds.modes),
            "high_quality": out["high_quality"], "mode_kl": out["kl"], "mode_counts": out["counts"]}


register(Metric("modes", P, _modes, modes.mode_stats, {"modes_covered": True, "high_quality": True, "mode_kl": False},
                MODES_PARAMS, requires=lambda c: None if c.dataset is not None and c.dataset.modes is not None
                else "modes needs a dataset with known modes (ring-8, grid-25)"))

# --------------------------------------------------------------------------------------------------
# Images

I = ("images",)
KID_PARAMS = {"subsets": 100, "subset_size": "min(1000, n_generated, n_real)"}


def _kid(c: Inputs) -> dict:
    size = min(1000, len(c.fake), len(c.real))
    mean, std = images.kid(c.feats("fake"), c.feats("real"), KID_PARAMS["subsets"], size, seed=c.seed)
    return {"kid": mean, "kid_std": std}


CLASSES_PARAMS = {"threshold": 0.01, "sure": 0.9}


def _classes(c: Inputs) -> dict:
    logits = c.logits("fake")  # (n, 10)
    ds = c.dataset
    if ds is not None and ds.y is not None and ds.num_classes == logits.shape[1]:
        hist = torch.bincount(ds.y.cpu(), minlength=ds.num_classes).double()
    else:  # no labels: the classifier's own reading of the real images
        hist = torch.bincount(c.logits("real").argmax(1), minlength=logits.shape[1]).double()
    out = images.class_stats(logits, data_hist=hist, **CLASSES_PARAMS)
    return {"classes": out["classes"], "class_kl": out["kl"], "confident": out["confident"], "class_hist": out["hist"]}


def _digits(c: Inputs) -> str | None:
    return None if isinstance(c.extractor, F.DigitClassifier) else "needs the digit classifier (28x28x1 digit images)"


def _cond_acc(c: Inputs) -> dict:
    out = images.conditional_accuracy(c.logits("fake"), c.labels)
    return {"cond_acc": out["mean"], "cond_acc_min": out["min"], "cond_acc_per_class": out["per_class"]}


def _cond_acc_requires(c: Inputs) -> str | None:
    if c.labels is None:
        return "cond_acc needs a conditional run (model.conditional != 'none')"
    if _digits(c):
        return "cond_acc " + _digits(c)
    if c.num_classes != F.DIGIT_CLASSES:
        return (f"cond_acc needs a run conditioned on the digit classifier's {F.DIGIT_CLASSES} classes, "
                f"not {c.num_classes}")
    if len(c.fake) < c.num_classes:
        return f"cond_acc needs at least one sample per class (-n >= {c.num_classes})"
    return None


register(Metric("fid", I, lambda c: {"fid": images.fid(c.feats("fake"), c.feats("real"))}, images.fid,
                {"fid": False}, features=True))
register(Metric("kid", I, _kid, images.kid, {"kid": False, "kid_std": False}, KID_PARAMS, features=True))
register(Metric("pr", I, lambda c: images.precision_recall(c.feats("real"), c.feats("fake"), k=3),
                images.precision_recall, {"precision": True, "recall": True}, {"k": 3}, features=True))
register(Metric("dc", I, lambda c: images.density_coverage(c.feats("real"), c.feats("fake"), k=5),
                images.density_coverage, {"density": True, "coverage": True}, {"k": 5}, features=True))
register(Metric("classes", I, _classes, images.class_stats, {"classes": True, "class_kl": False, "confident": True},
                CLASSES_PARAMS, features=True, requires=lambda c: _digits(c) and "classes " + _digits(c)))
register(Metric("cond_acc", I, _cond_acc, images.conditional_accuracy, {"cond_acc": True, "cond_acc_min": True},
                {"labels": "the generated samples, requested as classes 0..K-1 cycled", "classifier": "argmax"},
                features=True, requires=_cond_acc_requires))

SWD_PARAMS = {"max_images": 2048, "descriptors_per_image": 128, "patch": 7, "directions": 128, "repeats": 4,
              "min_res": 16, "scale": "x1e3, mean over pyramid levels"}


def _swd(c: Inputs) -> dict:
    n = SWD_PARAMS["max_images"]  # the first n of each (both are already seeded random draws)
    out = swd(c.real[:n], c.fake[:n], seed=c.seed)
    return {"swd": out["swd"], "swd_levels": out["swd_levels"], "swd_resolutions": out["swd_resolutions"]}


register(Metric("swd", I, _swd, swd, {"swd": False}, SWD_PARAMS,
                requires=lambda c: None if c.fake.shape[-1] >= 16 else "swd needs images of at least 16x16 pixels"))

# --------------------------------------------------------------------------------------------------
# Tables (DataFrames: generated rows against the run's training split; the holdout for ML efficacy and DCR)

TB = ("tables",)


def _kinds(c: Inputs) -> dict[str, str]:
    return c.dataset.extra["kinds"]


def _quality(c: Inputs) -> dict:
    out = tables.quality_report(c.real, c.fake, _kinds(c))
    return {"quality": out["overall"], "column_shapes": out["column_shapes"],
            "column_pair_trends": out["column_pair_trends"], "quality_columns": out["columns"],
            "quality_pairs": out["pairs"]}


def _holdout(c: Inputs) -> str | None:
    if c.dataset is None or "holdout" not in c.dataset.extra or not len(c.dataset.extra["holdout"]):
        return "needs a holdout split of the run's table (data.holdout > 0)"
    return None


def _ml_efficacy(c: Inputs) -> dict:
    ds = c.dataset
    out = tables.ml_efficacy(ds.extra["train"], c.fake, ds.extra["holdout"], ds.meta["target"], _kinds(c), c.seed)
    return {"ml_efficacy": out["synthetic"], "ml_efficacy_real": out["real"], "ml_efficacy_ratio": out["ratio"],
            "ml_efficacy_metric": f"{out['metric']} of {out['target']}"}


def _dcr(c: Inputs) -> dict:
    ds = c.dataset
    out = tables.dcr(ds.extra["train"], c.fake, ds.extra["holdout"], _kinds(c), seed=c.seed)
    return {"dcr_share_closer": out["share_closer"], "dcr_holdout_share_closer": out["holdout_share_closer"],
            "dcr_median": out["median_dcr_synthetic"], "dcr_median_holdout": out["median_dcr_holdout"],
            "exact_copies": out["exact_copies"], "exact_copy_share": out["exact_copy_share"],
            "exact_copy_rows": out["exact_copy_rows"]}


register(Metric("quality", TB, _quality, tables.quality_report,
                {"quality": True, "column_shapes": True, "column_pair_trends": True},
                {"definition": "SDMetrics QualityReport (sdmetrics 0.32)", "reference": "the training split"}))
register(Metric("ml_efficacy", TB, _ml_efficacy, tables.ml_efficacy, {"ml_efficacy": True},
                {"model": "HistGradientBoosting, max_iter 100", "train": "synthetic rows", "test": "the holdout split"},
                requires=lambda c: _holdout(c) or (None if c.dataset.meta.get("target") else
                                                   "ml_efficacy needs data.target (the column to predict)")))
register(Metric("dcr", TB, _dcr, tables.dcr, {"dcr_share_closer": False, "exact_copy_share": False},
                {"threshold": "5th percentile of holdout-to-training distances", "max_train": 20000,
                 "max_query": 5000}, requires=_holdout))

# --------------------------------------------------------------------------------------------------
# Text (lines: generated against the training lines and the held-out lines)


def _text(c: Inputs) -> dict:
    return text.text_metrics(c.fake, c.dataset.extra["train_lines"], c.real, seed=c.seed)


register(Metric("text", ("text",), _text, text.text_metrics,
                {k: way == "higher" for k, (_, way) in text.METRICS.items() if k not in ("real_nll", "rev_nll_real")},
                {"lm": "character 5-gram, interpolated modified Kneser-Ney", "real": "the holdout split"},
                requires=lambda c: None if c.dataset is not None and c.real and c.fake else
                "text needs the run's held-out lines (data.holdout > 0) and at least one sample"))
