"""Feature extractors for image metrics: the shipped digit classifier and (optionally) Inception-v3.

Every extractor is an nn.Module with `.name`, `.sha256` (of its weights file, or None), `.features(x)`
-> (N, F) and, where it has them, `.logits(x)` -> (N, C). Inputs are images NCHW in [-1, 1]; both
methods run in eval mode, without gradients, in batches. `prepare(x)` converts other sizes or channel
counts explicitly and returns a string saying what it did, for the provenance of the numbers (Inception
gets uint8 at the native size and is resized by torch-fidelity, as the FID standard does).
"""

from __future__ import annotations

import functools
import hashlib
import json
from contextlib import nullcontext
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load as load_bytes
from torch import nn

DIGIT_WEIGHTS = "digit_cnn.safetensors"
# sha256 of the shipped weights file; scripts/train_digit_classifier.py prints it after training.
DIGIT_SHA256 = "e65b7701341ca7d046dd56187ba22396f2e50b98bf54cad5e43259e4251ecedf"
DIGIT_SHAPE = (1, 28, 28)  # the images the digit classifier reads
DIGIT_CLASSES = 10  # its outputs


class FeaturesUnavailable(RuntimeError):
    """A feature extractor's package or weights are missing; the message says what to install or fetch."""


def convert_images(x: torch.Tensor, channels: int, size: int | None) -> tuple[torch.Tensor, str]:
    """Bring images (N, C, H, W) to `channels` x `size` x `size`: gray->RGB by repeat, bilinear resize.

    size=None keeps the native size. Returns the images and a description of the conversion ('' when
    none was needed).
    """
    if x.ndim != 4:
        raise ValueError(f"images: expected (N, C, H, W), got shape {tuple(x.shape)}")
    steps = []
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.repeat(1, channels, 1, 1)  # (N, channels, H, W)
            steps.append(f"gray->{channels} channels by repeat")
        elif channels == 1 and x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)  # (N, 1, H, W)
            steps.append("RGB->gray by channel mean")
        else:
            raise ValueError(f"images: cannot convert {x.shape[1]} channels to {channels}")
    if size is not None and x.shape[2:] != (size, size):
        steps.append(f"resized {x.shape[2]}x{x.shape[3]}->{size}x{size} (bilinear)")
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x, "; ".join(steps)


class Extractor(nn.Module):
    """The shared interface: batched, eval-mode, no-grad `features` and `logits` of [-1, 1] images."""

    name = "extractor"
    channels, size = 1, 28  # the input the network expects; other images are converted
    sha256: str | None = None

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, str]:
        return convert_images(torch.as_tensor(x).float(), self.channels, self.size)

    def _batched(self, fn, x: torch.Tensor, batch: int) -> torch.Tensor:
        x, _ = self.prepare(x)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        with torch.no_grad():
            out = torch.cat([fn(chunk.to(device)).float().cpu() for chunk in x.split(batch)])
        self.train(was_training)
        return out

    def features(self, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
        """(N, C, H, W) images in [-1, 1] -> (N, F) features."""
        return self._batched(self._features, x, batch)

    def logits(self, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
        """(N, C, H, W) images in [-1, 1] -> (N, classes) logits."""
        return self._batched(self._logits, x, batch)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no classifier logits")


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class DigitClassifier(Extractor):
    """A small CNN for 28x28x1 digits; features are its 128-d penultimate layer (after ReLU)."""

    name = "digit-cnn"

    def __init__(self, dropout: float = 0.3):
        super().__init__()
        self.body = nn.Sequential(
            _conv(1, 32), nn.MaxPool2d(2),  # (N, 32, 14, 14)
            _conv(32, 48), nn.MaxPool2d(2),  # (N, 48, 7, 7)
            _conv(48, 96), nn.MaxPool2d(2), nn.Flatten(),  # (N, 96 * 3 * 3)
            nn.Linear(96 * 3 * 3, 128), nn.ReLU(),  # (N, 128) the features
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def digit_split() -> tuple[np.ndarray, np.ndarray]:
    """The classifier's split of mnist-5k (rows sorted by label): test = rows i % 5 == 4 (100 per class)."""
    idx = np.arange(5000)
    return idx[idx % 5 != 4], idx[idx % 5 == 4]


def load_digit_classifier(path: str | None = None, check: bool = True) -> DigitClassifier:
    """The shipped digit classifier, its weights file checked against `DIGIT_SHA256`."""
    ref = resources.files("ganforge.metrics") / "weights" / DIGIT_WEIGHTS if path is None else None
    try:
        raw = ref.read_bytes() if ref is not None else Path(path).read_bytes()
    except FileNotFoundError:
        raise FeaturesUnavailable(f"digit classifier weights not found ({path or ref}): reinstall ganforge, "
                                  "or rebuild them with scripts/train_digit_classifier.py") from None
    digest = hashlib.sha256(raw).hexdigest()
    if check and digest != DIGIT_SHA256:
        raise FeaturesUnavailable(f"digit classifier weights have sha256 {digest}, expected {DIGIT_SHA256}: "
                                  "the file is damaged or not the shipped one; reinstall ganforge")
    model = DigitClassifier()
    model.load_state_dict(load_bytes(raw))
    model.sha256 = digest
    return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=1)
def shipped_digit_classifier() -> DigitClassifier:
    """The shipped, checked digit classifier, loaded once per process and shared: read it, do not change it."""
    return load_digit_classifier()


def weights_metadata(path: str | None = None) -> dict[str, str]:
    """How the digit classifier's weights were made (training data, split, seed, test accuracy)."""
    ref = resources.files("ganforge.metrics") / "weights" / DIGIT_WEIGHTS if path is None else path
    with resources.as_file(ref) if path is None else nullcontext(path) as p, safe_open(str(p), "pt") as f:
        return json.loads((f.metadata() or {}).get("training", "{}"))


# Published weights of the TF-compatible Inception-v3 used for FID (pytorch-fid / torch-fidelity).
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


class InceptionV3Features(Extractor):
    """Inception-v3 pool3 features (2048-d) as in TF FID, via torch-fidelity (an optional extra).

    Never falls back to another network: if torch-fidelity is missing or its weights cannot be had,
    it raises FeaturesUnavailable saying what to install or download.
    """

    name = "inception-v3-compat"
    channels, size = 3, 299  # size is the network's input; torch-fidelity resizes to it, not ganforge
    # what torch-fidelity does to the uint8 images it is given (FeatureExtractorInceptionV3.forward)
    RESIZE = "resized to 299x299 by torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x"

    def __init__(self, weights_path: str | None = None):
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except Exception as e:  # missing, or installed over a torchvision that does not import
            raise FeaturesUnavailable(
                f"Inception features need torch-fidelity ({e}): pip install torch-fidelity "
                "(which needs a working torchvision)"
            ) from None
        try:
            self.net = FeatureExtractorInceptionV3(self.name, ["2048", "logits_unbiased"], weights_path)
        except Exception as e:  # download errors come as URLError, HTTPError, RuntimeError, ...
            raise FeaturesUnavailable(
                f"could not load Inception-v3 weights ({type(e).__name__}: {e}); download {INCEPTION_URL} "
                "and pass its path as weights_path"
            ) from None
        self.sha256 = _file_sha256(weights_path) if weights_path else None

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, str]:
        """[-1, 1] images -> uint8 (N, 3, H, W) at their native size, as the FID standard feeds the network.

        Resizing here (e.g. torch's bilinear to 299) would differ from torch-fidelity's TF1-compatible
        resize by several grey levels and give FIDs comparable to no one else's.
        """
        x, how = convert_images(torch.as_tensor(x).float(), self.channels, None)
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (N, 3, H, W); torch-fidelity takes 0..255
        steps = [how] if how else []
        steps += [f"uint8 round((clamp(x, -1, 1) + 1) * 127.5) at native {x.shape[2]}x{x.shape[3]}", self.RESIZE]
        return x, "; ".join(steps)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[1]


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe(extractor: Extractor) -> dict[str, str | None]:
    """Provenance of an extractor: its name and the sha256 of its weights."""
    return {"name": extractor.name, "sha256": extractor.sha256}


__all__ = ["DigitClassifier", "Extractor", "FeaturesUnavailable", "InceptionV3Features", "convert_images",
           "describe", "digit_split", "load_digit_classifier", "shipped_digit_classifier", "weights_metadata"]
