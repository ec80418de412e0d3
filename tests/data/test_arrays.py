import pickle

import numpy as np
import pytest
from PIL import Image

from ganforge.config import ConfigError
from ganforge.data import cache
from ganforge.data.arrays import LoadedVectors, image_layout, load_array, to_uint8
from ganforge.data.images import LoadedImages, load_image_folder
from tests.imagefolders import write_digit_folder


def pixels(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def raises(path, msg, **kw):
    with pytest.raises(ConfigError) as e:
        load_array(path, **kw)
    assert str(e.value) == msg


# --------------------------------------------------------------------------------------------------
# Layouts and pixel ranges


@pytest.mark.parametrize(
    ("shape", "layout", "note"),
    [
        ((5,), "vectors", ""),
        ((5, 7), "vectors", ""),
        ((5, 8, 6), "NHW", ""),
        ((5, 8, 6, 3), "NHWC", ""),
        ((5, 1, 8, 6), "NCHW", ""),
        ((5, 3, 4, 4), "NCHW", "shape (5, 3, 4, 4) could be NCHW or NHWC: read as NCHW (3 channels)"),
    ],
)
def test_image_layout(shape, layout, note):
    assert image_layout(shape) == (layout, note)


def test_layout_errors(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 5, 6, 7), np.uint8))
    raises(tmp_path / "a.npy", "images need 1, 3 or 4 channels first (N, C, H, W) or last (N, H, W, C), "
           "got shape (2, 5, 6, 7)")
    np.save(tmp_path / "b.npy", np.zeros((2, 1, 4, 4, 1), np.uint8))
    raises(tmp_path / "b.npy", "expected (N,) or (N, D) vectors or (N, H, W[, C]) images, got shape (2, 1, 4, 4, 1)")
    np.save(tmp_path / "c.npy", np.zeros((0, 4, 4), np.uint8))
    raises(tmp_path / "c.npy", f"{tmp_path / 'c.npy'}: the array holds no rows (shape (0, 4, 4))")


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_uint8_images_in_every_layout(tmp_path, layout):
    nchw = pixels(3, 1 if layout == "NHW" else 3, 8, 8)
    stored = {"NHW": nchw[:, 0], "NHWC": nchw.transpose(0, 2, 3, 1), "NCHW": nchw}[layout]
    np.save(tmp_path / "a.npy", stored)
    out = load_array(tmp_path / "a.npy")
    assert isinstance(out, LoadedImages) and out.report["layout"] == layout and out.y is None
    np.testing.assert_array_equal(out.x, nchw)
    assert out.report["range"] == "uint8 pixels as they are" and out.report["resolution"] == 8
    assert not out.x.flags.writeable


def test_float_ranges_are_detected_and_scaled(tmp_path):
    base = pixels(2, 1, 8, 8)
    lo, hi = base.min(), base.max()
    cases = {
        "unit": (base / 255.0, f"[{lo / 255:g}, {hi / 255:g}] within [0, 1]: x 255"),
        "signed": (base / 127.5 - 1, f"[{lo / 127.5 - 1:g}, {hi / 127.5 - 1:g}] within [-1, 1]: (x + 1) x 127.5"),
        "bytes": (base.astype(np.float64), f"[{lo}, {hi}] within [0, 255]: as they are"),
    }
    for name, (x, note) in cases.items():
        np.save(tmp_path / f"{name}.npy", x)
        out = load_array(tmp_path / f"{name}.npy")
        np.testing.assert_array_equal(out.x, base)
        assert out.report["range"] == f"float range {note}"


def test_range_notes_exactly():
    assert to_uint8(np.array([0.25, 0.5]))[1] == "float range [0.25, 0.5] within [0, 1]: x 255"
    np.testing.assert_array_equal(to_uint8(np.array([0.25, 0.5]))[0], [64, 128])  # rint(63.75), rint(127.5) (even)
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0]))[0], [0, 128, 255])
    assert to_uint8(np.array([2, 200], np.int64))[1] == "int64 pixels in [2, 200] read as 0..255"
    assert to_uint8(np.array([0, 1], np.int32))[1] == (
        "int32 pixels in [0, 1] read as 0..255 (all 0 or 1: nearly black; multiply by 255 if they are binary)")
    np.testing.assert_array_equal(to_uint8(np.array([True, False]))[0], [255, 0])


@pytest.mark.parametrize(
    ("x", "msg"),
    [
        (np.array([-3.0, 7.0]), "float pixels must lie in [0, 1], [-1, 1] or [0, 255], found [-3, 7]"),
        (np.array([0.0, 300.5]), "float pixels must lie in [0, 1], [-1, 1] or [0, 255], found [0, 300.5]"),
        (np.array([0.0, np.nan, 0.5]), "float pixels must be finite, found NaN (the finite values span [0, 0.5])"),
        (np.array([np.inf, 1.0]), "float pixels must be finite, found inf (the finite values span [1, 1])"),
        (np.array([-1, 300], np.int16), "integer pixels must lie in [0, 255], found [-1, 300]; rescale them to 0..255"),
    ],
)
def test_range_errors(x, msg):
    with pytest.raises(ConfigError) as e:
        to_uint8(x)
    assert str(e.value) == msg


def test_non_square_images_fit_and_options(tmp_path):
    nhwc = pixels(2, 6, 4, 3)  # h 6, w 4
    np.save(tmp_path / "a.npy", nhwc)
    out = load_array(tmp_path / "a.npy", resolution=4)
    np.testing.assert_array_equal(out.x, nhwc[:, 1:5].transpose(0, 3, 1, 2))  # centre crop
    assert out.report["nonsquare"] == 2
    gray = load_array(tmp_path / "a.npy", resolution=4, channels=1)
    np.testing.assert_array_equal(gray.x[0, 0], np.asarray(Image.fromarray(nhwc[0, 1:5]).convert("L")))
    auto = load_array(tmp_path / "a.npy")  # median side 4 -> the automatic minimum 8
    assert auto.x.shape == (2, 3, 8, 8) and auto.report["upscaled"] == 2
    why = "the median side 4 is below the automatic minimum 8 (data.resolution to change)"
    assert auto.report["resolution_reason"] == why
    padded = load_array(tmp_path / "a.npy", resolution=6, fit="pad", channels=4)
    assert padded.x.shape == (2, 4, 6, 6)
    np.testing.assert_array_equal(padded.x[:, 3, :, 0], 0)  # transparent white borders
    np.testing.assert_array_equal(padded.x[:, 3, :, 1:5], 255)
    raises(tmp_path / "a.npy", f"data.resolution=32 is more than 4x the largest image side (6 px) in "
           f"{tmp_path / 'a.npy'}: upscaling that far only adds blur; use data.resolution=8 (or 0 to choose from "
           "the images)", resolution=32)


# --------------------------------------------------------------------------------------------------
# .npz keys, labels, vectors


def test_npz_data_and_label_keys(tmp_path):
    x, y = pixels(4, 8, 8), np.array([0, 2, 2, 1])
    for key in ("x", "images", "data", "arr_0", "whatever"):
        np.savez(tmp_path / f"{key}.npz", **{key: x, "labels": y})
        out = load_array(tmp_path / f"{key}.npz")
        assert out.report["key"] == key and out.report["labels_key"] == "labels"
        np.testing.assert_array_equal(out.x[:, 0], x)
        np.testing.assert_array_equal(out.y, y)
        assert out.y.dtype == np.int64 and out.class_names == ["0", "1", "2"]
    np.savez(tmp_path / "y.npz", pics=x, y=y.astype(np.uint8))
    assert load_array(tmp_path / "y.npz").report["labels_key"] == "y"
    np.savez(tmp_path / "own.npz", pics=x, digit=y)  # the data is the only array that is not the labels
    out = load_array(tmp_path / "own.npz", labels_key="digit")
    assert (out.report["key"], out.report["labels_key"]) == ("pics", "digit")
    np.testing.assert_array_equal(out.y, y)


def test_npz_key_errors(tmp_path):
    x, y = pixels(4, 8, 8), np.array([0, 2, 2, 1])
    np.savez(tmp_path / "two.npz", a=x, b=x, labels=y)
    raises(tmp_path / "two.npz", f"{tmp_path / 'two.npz'}: cannot tell which array is the data among a, b, labels; "
           "name it one of x, images, data, arr_0")
    np.savez(tmp_path / "ok.npz", x=x, labels=y)
    raises(tmp_path / "ok.npz", f"{tmp_path / 'ok.npz'} has no array 'digit' for the labels; it holds x, labels",
           labels_key="digit")
    np.save(tmp_path / "one.npy", x)
    raises(tmp_path / "one.npy", f"{tmp_path / 'one.npy'} is a .npy with one array; labels (labels_key='y') need "
           "an .npz", labels_key="y")


@pytest.mark.parametrize(
    ("labels", "msg"),
    [
        (np.array([0.0, 1.0, 1.0, 0.0]), "labels 'labels' must be integers, got float64 (save them with .astype(int))"),
        (np.array([0, 1, 1]), "labels 'labels' must be 1-D with one per row (4), got shape (3,)"),
        (np.zeros((4, 1), np.int64), "labels 'labels' must be 1-D with one per row (4), got shape (4, 1)"),
        (np.array([0, -1, 1, 0]), "labels 'labels' must be class indices >= 0, found -1"),
    ],
)
def test_label_errors(tmp_path, labels, msg):
    np.savez(tmp_path / "a.npz", x=pixels(4, 8, 8), labels=labels)
    raises(tmp_path / "a.npz", f"{tmp_path / 'a.npz'}: {msg}")


def test_vectors(tmp_path):
    rows = np.random.default_rng(0).normal(size=(6, 3))
    np.savez(tmp_path / "v.npz", data=rows, y=np.array([0, 1, 0, 1, 3, 3]))
    out = load_array(tmp_path / "v.npz")
    assert isinstance(out, LoadedVectors) and out.x.dtype == np.float32 and out.x.shape == (6, 3)
    np.testing.assert_array_equal(out.x, rows.astype(np.float32))
    assert out.sha256 == cache.content_sha256(out.x, out.y) and out.class_names == ["0", "1", "2", "3"]
    assert out.describe() == [
        f"read 6 vectors of 3 values from {tmp_path / 'v.npz'} (data, float64)",
        "4 classes: 0 (2), 1 (2), 2 (0), 3 (2)",
        "warning: class 2 has no examples",
    ]
    np.save(tmp_path / "one.npy", np.arange(5, dtype=np.int64))
    single = load_array(tmp_path / "one.npy")
    assert single.x.shape == (5, 1) and single.x.dtype == np.float32 and single.y is None
    np.testing.assert_array_equal(single.x[:, 0], np.arange(5))
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    raises(tmp_path / "nan.npy", f"{tmp_path / 'nan.npy'}: the array holds NaN or inf values")
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3)))
    raises(tmp_path / "empty.npz", f"{tmp_path / 'empty.npz'}: array 'x' holds no rows (shape (0, 3))")
    np.savez(tmp_path / "text.npz", x=np.array([["a", "b"]]))
    raises(tmp_path / "text.npz", f"{tmp_path / 'text.npz'}: array 'x' must hold real numbers, got <U1")


# --------------------------------------------------------------------------------------------------
# Never unpickle


def test_object_arrays_and_pickles_are_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    raises(tmp_path / "obj.npy", f"{tmp_path / 'obj.npy'} holds Python objects (a pickled object array), which "
           "ganforge never loads; save a plain numeric array")
    np.savez(tmp_path / "obj.npz", x=pixels(2, 4, 4), labels=np.array(["a", 1], dtype=object))
    raises(tmp_path / "obj.npz", f"{tmp_path / 'obj.npz'}: array 'labels' holds Python objects (a pickled object "
           "array), which ganforge never loads; save a plain numeric array")
    (tmp_path / "p.npy").write_bytes(pickle.dumps(np.zeros(3)))
    raises(tmp_path / "p.npy", f"{tmp_path / 'p.npy'} is a Python pickle, which ganforge never loads; save a plain "
           "numeric array (np.save / np.savez)")
    (tmp_path / "t.npy").write_text("1,2,3")
    raises(tmp_path / "t.npy", f"{tmp_path / 't.npy'} is not a numpy .npy or .npz file")
    raises(tmp_path / "none.npy", f"data path {tmp_path / 'none.npy'} does not exist")


def test_same_pixels_hash_the_same_from_a_folder_and_an_array(tmp_path):
    folder = write_digit_folder(tmp_path / "d", n_per_class=2, jpeg_share=0, corrupt=0, rgba=0, labels=False)
    from_folder = load_image_folder(folder.root, resolution=28, use_cache=False)
    np.save(tmp_path / "d.npy", folder.pixels)
    from_array = load_array(tmp_path / "d.npy", resolution=28)
    np.testing.assert_array_equal(from_array.x, from_folder.x)
    assert from_array.sha256 == from_folder.sha256
    assert from_array.describe()[:3] == [
        f"read 20 images (1x28x28) from {tmp_path / 'd.npy'}: uint8 pixels as they are",
        "resolution 28: set by data.resolution",
        "channels 1: the array's own channels (data.channels to change)",
    ]
