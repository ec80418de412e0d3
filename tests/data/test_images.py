import io
import os
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import ConfigError
from ganforge.data import images
from ganforge.data.images import auto_resolution, composite_on_white, load_image_folder, to_float
from tests.imagefolders import rgba_digit, write_digit_folder, write_shapes_folder

GRAY = np.array([[0, 40, 80, 120], [160, 200, 240, 255], [7, 77, 177, 250], [1, 2, 3, 4]], np.uint8)  # 4x4


def save(path, image, fmt=None, **kw):
    """Save a PIL image or a uint8 array (mode inferred) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, fmt, **kw)
    return path


def load(path, **kw):
    return load_image_folder(path, use_cache=False, **kw)


def rgb(h=4, w=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# Formats and modes


@pytest.mark.parametrize("ext", ["png", "bmp", "gif"])
def test_gray_lossless_formats_read_exactly(tmp_path, ext):
    save(tmp_path / "d" / f"a.{ext}", GRAY)
    out = load(tmp_path / "d", resolution=4)
    assert out.x.shape == (1, 1, 4, 4) and out.x.dtype == np.uint8
    np.testing.assert_array_equal(out.x[0, 0], GRAY)
    assert out.report["channels_reason"] == "every image is grayscale (data.channels to change)"


def test_webp_lossless_rgb_and_jpeg_close(tmp_path):
    colour = rgb(8, 8)
    save(tmp_path / "w" / "a.webp", colour, lossless=True)
    np.testing.assert_array_equal(load(tmp_path / "w", resolution=8).x[0], colour.transpose(2, 0, 1))
    flat = np.full((8, 8), 90, np.uint8)  # a flat JPEG survives compression almost unchanged
    save(tmp_path / "j" / "a.jpeg", flat, quality=95)
    out = load(tmp_path / "j", resolution=8)
    assert out.x.shape == (1, 1, 8, 8)
    assert np.abs(out.x.astype(int) - 90).max() <= 1


def test_rgba_is_composited_on_white_unless_four_channels(tmp_path):
    pixels = np.array([[[100, 50, 0, 128], [10, 20, 30, 0]], [[10, 20, 30, 255], [200, 100, 0, 1]]], np.uint8)
    save(tmp_path / "a.png", pixels)
    out = load(tmp_path, resolution=2)
    assert out.report["channels"] == 3 and out.report["transparent"] == 1
    # (c * a + 255 * (255 - a) + 127) // 255, by hand
    expect = np.array([[[177, 152, 127], [255, 255, 255]], [[10, 20, 30], [255, 254, 254]]], np.uint8)
    np.testing.assert_array_equal(out.x[0].transpose(1, 2, 0), expect)
    kept = load(tmp_path, resolution=2, channels=4)
    np.testing.assert_array_equal(kept.x[0].transpose(1, 2, 0), pixels)


def test_gray_alpha_and_palette_transparency(tmp_path):
    la = np.dstack([GRAY, np.where(GRAY > 100, 0, 255).astype(np.uint8)])
    save(tmp_path / "la" / "a.png", Image.fromarray(la, "LA"))
    out = load(tmp_path / "la", resolution=4)
    assert out.report["channels"] == 1  # gray + alpha is gray
    np.testing.assert_array_equal(out.x[0, 0], np.where(GRAY > 100, 255, GRAY))
    pal = Image.new("P", (2, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1, 0, 1])
    save(tmp_path / "p" / "a.png", pal, transparency=1)
    out = load(tmp_path / "p", resolution=2)
    np.testing.assert_array_equal(out.x[0, :, 0], [[255, 255], [0, 255], [0, 255]])  # red, then white


def test_gif_first_frame_of_an_animation(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (30, 200)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    out = load(tmp_path, resolution=4)
    assert out.report["channels"] == 1
    np.testing.assert_array_equal(out.x[0, 0], np.full((4, 4), 30))


def test_sixteen_bit_gray_is_rounded_to_eight_bits(tmp_path):
    wide = np.array([[0, 257, 65535, 32896], [128, 129, 1000, 65000]], np.uint16)  # v / 257, rounded
    save(tmp_path / "a.png", Image.fromarray(wide))
    assert Image.open(tmp_path / "a.png").mode == "I;16"
    out = load(tmp_path, resolution=2, fit="resize")
    np.testing.assert_array_equal(images.native_pixels(Image.open(tmp_path / "a.png"))[..., 0],
                                  [[0, 1, 255, 128], [0, 1, 4, 253]])
    assert out.report["channels"] == 1


def test_cmyk_and_bilevel_and_colour_palette(tmp_path):
    save(tmp_path / "c" / "a.jpg", Image.new("CMYK", (8, 8), (10, 20, 30, 40)), quality=100)
    out = load(tmp_path / "c", resolution=8)
    # (255 - c) * (255 - k) / 255 per channel: (207, 198, 190)
    assert np.abs(out.x[0, :, 4, 4].astype(int) - [207, 198, 190]).max() <= 2
    save(tmp_path / "b" / "a.png", Image.fromarray(GRAY > 100))  # mode "1"
    np.testing.assert_array_equal(load(tmp_path / "b", resolution=4).x[0, 0], np.where(GRAY > 100, 255, 0))
    colour = rgb(4, 4)
    save(tmp_path / "p" / "a.png", Image.fromarray(colour).quantize(16))
    out = load(tmp_path / "p", resolution=4)
    assert out.report["channels"] == 3
    np.testing.assert_array_equal(out.x[0], np.asarray(Image.fromarray(colour).quantize(16).convert("RGB"))
                                  .transpose(2, 0, 1))


def test_exif_orientation_is_applied(tmp_path):
    tall = np.zeros((16, 8), np.uint8)  # h 16, w 8: black top, white bottom
    tall[8:] = 255
    exif = Image.Exif()
    exif[images.ORIENTATION] = 6  # shown rotated 90 degrees clockwise: the top goes to the right
    save(tmp_path / "a.jpg", tall, exif=exif, quality=95)
    out = load(tmp_path, resolution=8, fit="resize").x[0, 0].astype(int)  # 16x8 shown -> 8x8
    assert out[:, :3].min() > 230 and out[:, 5:].max() < 25


def test_hidden_and_non_image_files_are_ignored(tmp_path):
    save(tmp_path / "a.png", GRAY)
    save(tmp_path / ".hidden.png", GRAY)
    save(tmp_path / ".git" / "b.png", GRAY)
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "c.PNG").write_bytes((tmp_path / "a.png").read_bytes())  # extensions are case-blind
    out = load(tmp_path, resolution=4)
    assert out.report["found"] == 2 and out.report["looked_at"] == 3 and out.report["skipped"] == 0


# --------------------------------------------------------------------------------------------------
# Channels, resolution, fit


def test_channels_auto_mixed_and_forced(tmp_path):
    colour = rgb()
    save(tmp_path / "a.png", GRAY)
    save(tmp_path / "b.png", colour)
    out = load(tmp_path, resolution=4)
    assert out.report["channels"] == 3
    assert out.report["channels_reason"] == "1 image is in colour, e.g. b.png (RGB) (data.channels to change)"
    np.testing.assert_array_equal(out.x[0], np.stack([GRAY] * 3))
    gray = load(tmp_path, resolution=4, channels=1)
    np.testing.assert_array_equal(gray.x[1, 0], np.asarray(Image.fromarray(colour).convert("L")))  # Pillow's luma
    four = load(tmp_path, resolution=4, channels="4")
    np.testing.assert_array_equal(four.x[0], np.stack([GRAY] * 3 + [np.full((4, 4), 255)]))
    assert four.report["channels_reason"] == "set by data.channels"


def test_luma_matches_pillow_on_every_gray_and_random_colours():
    colours = np.concatenate([np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1), rgb(1000, 1)[:, 0]])
    pillow = np.asarray(Image.fromarray(colours[None]).convert("L"))[0]
    np.testing.assert_array_equal(images.luma(colours)[:, 0], pillow)


def test_composite_on_white_extremes():
    a = np.array([[0, 0], [0, 255], [77, 0], [77, 255], [200, 100]], np.uint8)  # (gray, alpha)
    # the last: (200 * 100 + 255 * 155 + 127) // 255
    np.testing.assert_array_equal(composite_on_white(a)[:, 0], [255, 0, 255, 77, 233])


@pytest.mark.parametrize(
    ("median", "res", "why"),
    [
        (28, 32, "the smallest power of two >= the median side 28"),
        (32, 32, "the smallest power of two >= the median side 32"),
        (28.5, 32, "the smallest power of two >= the median side 28.5"),
        (5, 8, "the median side 5 is below the automatic minimum 8"),
        (300, 128, "the median side 300 is above the automatic cap 128"),
    ],
)
def test_auto_resolution(median, res, why):
    assert auto_resolution(median) == (res, f"{why} (data.resolution to change)")


def test_auto_resolution_uses_the_median_shorter_side(tmp_path):
    for i, (w, h) in enumerate([(20, 40), (28, 28), (28, 60), (100, 100), (90, 300)]):
        save(tmp_path / f"{i}.png", rgb(h, w))
    out = load(tmp_path)
    assert out.x.shape == (5, 3, 32, 32) and out.report["sides"] == {"min": 20, "median": 28, "max": 100}
    why = "the smallest power of two >= the median side 28 (data.resolution to change)"
    assert out.describe()[1] == f"resolution 32: {why}"
    assert out.report["upscaled"] == 3 and out.report["nonsquare"] == 3


def test_fit_crop_takes_the_centre_square(tmp_path):
    wide = rgb(4, 6)  # h 4, w 6: the centre square is columns 1..4
    save(tmp_path / "a.png", wide)
    np.testing.assert_array_equal(load(tmp_path, resolution=4).x[0], wide[:, 1:5].transpose(2, 0, 1))
    tall = rgb(7, 4)  # h 7, w 4: rows 1..4
    save(tmp_path / "a.png", tall)
    np.testing.assert_array_equal(load(tmp_path, resolution=4).x[0], tall[1:5].transpose(2, 0, 1))


def test_fit_pad_adds_white_borders(tmp_path):
    save(tmp_path / "a.png", GRAY[:2])  # h 2, w 4 -> rows 1 and 2 of a white 4x4
    out = load(tmp_path, resolution=4, fit="pad").x[0, 0]
    np.testing.assert_array_equal(out, np.vstack([np.full((1, 4), 255), GRAY[:2], np.full((1, 4), 255)]))
    save(tmp_path / "a.png", np.dstack([GRAY[:2], GRAY[:2], GRAY[:2], np.full((2, 4), 200, np.uint8)]))
    four = load(tmp_path, resolution=4, fit="pad", channels=4).x[0]
    np.testing.assert_array_equal(four[3], np.vstack([np.zeros((1, 4)), np.full((2, 4), 200), np.zeros((1, 4))]))


def test_fit_resize_and_upscale_use_pillow_filters(tmp_path):
    big = rgb(8, 12)
    save(tmp_path / "a.png", big)
    out = load(tmp_path, resolution=4, fit="resize")
    want = np.asarray(Image.fromarray(big).resize((4, 4), Image.Resampling.LANCZOS)).transpose(2, 0, 1)
    np.testing.assert_array_equal(out.x[0], want)
    assert out.report["upscaled"] == 0
    small = rgb(2, 2)
    save(tmp_path / "a.png", small)
    out = load(tmp_path, resolution=4)
    want = np.asarray(Image.fromarray(small).resize((4, 4), Image.Resampling.BICUBIC)).transpose(2, 0, 1)
    np.testing.assert_array_equal(out.x[0], want)
    assert out.report["upscaled"] == 1 and "upscaled 1 image smaller than 4 px" in out.describe()


# --------------------------------------------------------------------------------------------------
# Labels, order, zips


def test_labels_from_folders_sorted_and_deterministic(tmp_path):
    for root, order in ((tmp_path / "a", ["dog", "cat", "emu"]), (tmp_path / "b", ["emu", "dog", "cat"])):
        for cls in order:  # written in a different order in each copy
            for i in range(2):
                save(root / cls / f"{i}.png", np.full((4, 4), 10 * ["cat", "dog", "emu"].index(cls) + i, np.uint8))
    a = load(tmp_path / "a", labels="folders", resolution=4)
    b = load(tmp_path / "b", labels="folders", resolution=4)
    assert a.class_names == ["cat", "dog", "emu"] and a.y.dtype == np.int64
    np.testing.assert_array_equal(a.y, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(a.x[:, 0, 0, 0], [0, 1, 10, 11, 20, 21])
    assert a.sha256 == b.sha256 and a.report["classes"] == {"cat": 2, "dog": 2, "emu": 2}
    unlabelled = load(tmp_path / "a", resolution=4)
    assert unlabelled.y is None and unlabelled.class_names == [] and unlabelled.sha256 != a.sha256


def test_nested_folders_keep_their_files_together(tmp_path):
    for name in ["a/x.png", "a-b/y.png", "a/z/w.png", "b.png"]:
        save(tmp_path / name, GRAY)
    listing = images.list_images(tmp_path)
    assert listing.names == ["a/x.png", "a/z/w.png", "a-b/y.png", "b.png"]


def test_label_errors(tmp_path):
    save(tmp_path / "cat" / "a.png", GRAY)
    save(tmp_path / "cat" / "b.png", GRAY)
    with pytest.raises(ConfigError) as e:
        load(tmp_path, labels="folders")
    assert str(e.value) == (f'data.labels="folders" needs at least 2 class subfolders with images in {tmp_path}, '
                            "found 1 (cat)")
    save(tmp_path / "dog" / "a.png", GRAY)
    save(tmp_path / "loose.png", GRAY)
    with pytest.raises(ConfigError) as e:
        load(tmp_path, labels="folders")
    assert str(e.value) == (f'data.labels="folders" needs every image in a class subfolder, but loose.png sits '
                            f"directly in {tmp_path} (1 such files)")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, labels="subfolders")
    assert str(e.value) == "data.labels must be one of none, folders, got 'subfolders'"


def test_zip_matches_the_folder_and_drops_its_wrapper_folder(tmp_path):
    folder = write_shapes_folder(tmp_path / "shapes", 12, size=8, labels=True)
    with zipfile.ZipFile(tmp_path / "shapes.zip", "w") as zf:
        for name in folder.names:
            zf.write(folder.root / name, f"shapes/{name}")
        zf.writestr("__MACOSX/shapes/._x.png", b"junk")
        zf.writestr("shapes/.DS_Store", b"junk")
        zf.writestr("shapes/readme.txt", b"hello")
    a = load(folder.root, labels="folders")
    b = load(tmp_path / "shapes.zip", labels="folders")
    assert b.class_names == ["circle", "square", "triangle"] and b.report["kind"] == "zip"
    assert a.sha256 == b.sha256 and b.report["looked_at"] == 13
    np.testing.assert_array_equal(b.x, folder.pixels.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(b.y, folder.labels)


# --------------------------------------------------------------------------------------------------
# Corrupt files and errors


def test_corrupt_files_are_skipped_counted_and_named(tmp_path):
    folder = write_digit_folder(tmp_path / "d", n_per_class=2, jpeg_share=0, corrupt=7, rgba=0)
    out = load(folder.root, labels="folders", resolution=28)
    assert out.report["found"] == 27 and out.report["decoded"] == 20 and out.report["skipped"] == 7
    assert out.report["skipped_files"] == [
        ["0/broken_0.png", "truncated image"],
        ["1/broken_1.png", "not a recognised image"],
        ["2/broken_2.png", "empty file"],
        ["3/broken_3.png", "truncated image"],
        ["4/broken_4.png", "not a recognised image"],
    ]
    assert out.describe()[1] == (
        "skipped 7 unreadable files: 0/broken_0.png (truncated image); 1/broken_1.png (not a recognised image); "
        "2/broken_2.png (empty file); 3/broken_3.png (truncated image); 4/broken_4.png (not a recognised image), ..."
    )
    np.testing.assert_array_equal(out.y, folder.labels)
    np.testing.assert_array_equal(out.x[:, 0], folder.pixels)


def test_path_errors(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "nope")
    assert str(e.value) == f"data path {tmp_path / 'nope'} does not exist"
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "x.txt")
    assert str(e.value) == f"data path {tmp_path / 'x.txt'} is neither a folder nor a .zip of images"
    with pytest.raises(ConfigError) as e:
        load(tmp_path)
    assert str(e.value) == (f"no images in {tmp_path}: looked at 1 files, e.g. x.txt; "
                            "accepted extensions: .bmp, .gif, .jpeg, .jpg, .png, .webp")
    (tmp_path / "bad.zip").write_bytes(b"PK not really")
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "bad.zip")
    assert str(e.value) == f"{tmp_path / 'bad.zip'} is not a readable zip file (File is not a zip file)"
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("a.csv", "1,2")
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "empty.zip")
    assert str(e.value) == (f"no images in {tmp_path / 'empty.zip'}: looked at 1 files, e.g. a.csv; "
                            "accepted extensions: .bmp, .gif, .jpeg, .jpg, .png, .webp")


def test_all_corrupt_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError) as e:
        load(tmp_path)
    assert str(e.value) == f"none of the 2 images in {tmp_path} could be read (e.g. a.png: empty file)"
    buf = io.BytesIO()
    Image.fromarray(np.tile(GRAY, (8, 8))).save(buf, "PNG", compress_level=0)
    (tmp_path / "a.png").write_bytes(buf.getvalue()[:100])  # the header reads, the pixels are cut off
    (tmp_path / "b.jpg").unlink()
    with pytest.raises(ConfigError) as e:
        load(tmp_path)
    assert str(e.value) == f"none of the 1 images in {tmp_path} could be read (e.g. a.png: truncated image)"


def test_too_small_for_the_resolution(tmp_path):
    save(tmp_path / "a.png", rgb(6, 5))
    save(tmp_path / "b.png", rgb(3, 3))
    with pytest.raises(ConfigError) as e:
        load(tmp_path, resolution=32)
    assert str(e.value) == (f"data.resolution=32 is more than 4x the largest image side (6 px) in {tmp_path}: "
                            "upscaling that far only adds blur; use data.resolution=8 (or 0 to choose from the images)")
    assert load(tmp_path, resolution=24).x.shape == (2, 3, 24, 24)  # exactly 4x is allowed


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"resolution": -1}, "data.resolution must be a whole number of pixels >= 0 (0 = automatic), got -1"),
        ({"resolution": 32.0}, "data.resolution must be a whole number of pixels >= 0 (0 = automatic), got 32.0"),
        ({"fit": "stretch"}, "data.fit must be one of crop, resize, pad, got 'stretch'"),
        ({"channels": 2}, "data.channels must be auto, 1, 3 or 4, got 2"),
    ],
)
def test_option_errors(tmp_path, kw, msg):
    save(tmp_path / "a.png", GRAY)
    with pytest.raises(ConfigError) as e:
        load(tmp_path, **kw)
    assert str(e.value) == msg


# --------------------------------------------------------------------------------------------------
# The digit folder, to_float, describe


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digit_folder(tmp_path_factory.mktemp("digits"), n_per_class=6, jpeg_share=0.2, corrupt=3, rgba=1)


def test_digit_folder_at_28_px_gray_is_exact(digits, tmp_path):
    out = load_image_folder(digits.root, resolution=28, channels=1, labels="folders", cache_dir=tmp_path)
    assert out.x.shape == (60, 1, 28, 28) and out.class_names == [str(d) for d in range(10)]
    np.testing.assert_array_equal(out.y, digits.labels)
    kinds = np.array(digits.kinds)
    png = kinds == "png"
    assert png.sum() == 47 and (kinds == "jpeg").sum() == 12
    np.testing.assert_array_equal(out.x[png, 0], digits.pixels[png])
    jpeg = out.x[kinds == "jpeg", 0].astype(int) - digits.pixels[kinds == "jpeg"]
    assert 0 < np.abs(jpeg).mean() < 4
    i = int(np.flatnonzero(kinds == "rgba")[0])
    want = digits.pixels[i].astype(int)
    want[:7, :7] = 255
    want[:7, 7:14] = (want[:7, 7:14] * 128 + 255 * 127 + 127) // 255
    np.testing.assert_array_equal(out.x[i, 0], want)
    np.testing.assert_array_equal(composite_on_white(rgba_digit(digits.pixels[i]))[..., 0], want)
    assert out.report["skipped"] == 3


def test_digit_folder_at_32_px_rgb(digits):
    out = load(digits.root, labels="folders")  # the RGBA digit makes "auto" pick colour
    assert out.x.shape == (60, 3, 32, 32) and out.report["resolution"] == 32 and out.report["upscaled"] == 60
    np.testing.assert_array_equal(out.x[:, 0], out.x[:, 1])
    np.testing.assert_array_equal(out.x[:, 1], out.x[:, 2])
    first = digits.kinds.index("png")
    want = np.asarray(Image.fromarray(digits.pixels[first]).resize((32, 32), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(out.x[first, 0], want)
    assert out.describe() == [
        f"decoded 60 images (3x32x32) from {digits.root} in {out.report['seconds']:.2f} s (cache off)",
        "skipped 3 unreadable files: 0/broken_0.png (truncated image); 1/broken_1.png (not a recognised image); "
        "2/broken_2.png (empty file)",
        "resolution 32: the smallest power of two >= the median side 28 (data.resolution to change)",
        f"channels 3: 1 image is in colour, e.g. {digits.names[digits.kinds.index('rgba')]} (RGBA) "
        "(data.channels to change)",
        "upscaled 60 images smaller than 32 px",
        "1 transparent image composited on white (data.channels=4 keeps alpha)",
        "10 classes: " + ", ".join(f"{d} (6)" for d in range(10)),
    ]


def test_to_float_is_x_over_127_5_minus_1():
    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    out = to_float(x)
    assert out.dtype == torch.float32 and out.shape == (1, 1, 16, 16)
    torch.testing.assert_close(out, torch.from_numpy(x).float() / 127.5 - 1, rtol=0, atol=0)
    assert out.min().item() == -1.0 and out.max().item() == 1.0
    assert torch.equal(to_float(torch.from_numpy(x)), out)
    readonly = x.copy()
    readonly.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(to_float(readonly), out)
    with pytest.raises(TypeError, match="expects uint8 pixels, got float32"):
        to_float(np.zeros(3, np.float32))


def test_threads_do_not_change_the_result(digits):
    one = load(digits.root, labels="folders", workers=1)
    many = load(digits.root, labels="folders", workers=4)
    assert one.sha256 == many.sha256 and one.report["skipped_files"] == many.report["skipped_files"]


def test_loaded_arrays_are_read_only(tmp_path):
    save(tmp_path / "a.png", GRAY)
    out = load(tmp_path, resolution=4)
    assert not out.x.flags.writeable and len(out) == 1
    assert out.sha256 == images.cache.content_sha256(out.x, None)
    assert os.path.isabs(out.source)
