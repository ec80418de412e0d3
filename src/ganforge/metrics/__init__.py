"""Measured quality: one module per metric family, feature extractors in features.py, a registry by name.

    import ganforge.metrics as M
    M.fid(feats_a, feats_b); M.kid(feats_a, feats_b); M.w1(a, b); M.mode_stats(x, centres, std); M.swd(a, b)
    M.swd(real_images, fake_images)  # on images directly, no pretrained network

Inputs are torch tensors or numpy arrays; every metric computes in float64 and returns plain floats.
"""

from __future__ import annotations

from ganforge.metrics.features import (
    DigitClassifier,
    FeaturesUnavailable,
    InceptionV3Features,
    convert_images,
    load_digit_classifier,
)
from ganforge.metrics.images import (
    class_stats,
    conditional_accuracy,
    density_coverage,
    fid,
    frechet_distance,
    kid,
    precision_recall,
)
from ganforge.metrics.lowdim import energy_distance, ks, mmd_rbf, moments_error, w1, w1_normal
from ganforge.metrics.modes import mode_stats
from ganforge.metrics.swd import swd

# The table of metrics as `ganforge eval` knows them (families, values, direction, parameters) is
# metrics/registry.py; importing it here would load every metric module for a single function.

__all__ = ["DigitClassifier", "FeaturesUnavailable", "InceptionV3Features", "class_stats",
           "conditional_accuracy", "convert_images", "density_coverage", "energy_distance", "fid",
           "frechet_distance", "kid", "ks", "load_digit_classifier", "mmd_rbf", "mode_stats", "moments_error",
           "precision_recall", "swd", "w1", "w1_normal"]
