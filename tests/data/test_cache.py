import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from ganforge.data import cache
from ganforge.data.images import load_image_folder
from tests.imagefolders import write_digit_folder, write_shapes_folder


@pytest.fixture
def shapes(tmp_path):
    return write_shapes_folder(tmp_path / "shapes", 9, size=8, labels=True)


def load(folder, cache_dir, **kw):
    return load_image_folder(folder, cache_dir=cache_dir, labels="folders", **kw)


def test_miss_then_hit_gives_the_same_data(shapes, tmp_path):
    first = load(shapes.root, tmp_path / "c")
    second = load(shapes.root, tmp_path / "c")
    assert (first.report["cache"], second.report["cache"]) == ("miss", "hit")
    assert isinstance(second.x, np.memmap) and not second.x.flags.writeable
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.y, second.y)
    assert first.sha256 == second.sha256 == cache.content_sha256(np.asarray(second.x), second.y)
    assert second.class_names == ["circle", "square", "triangle"] and second.source == str(shapes.root)
    assert second.report["cache_path"] == first.report["cache_path"]
    assert second.report["classes"] == first.report["classes"]
    assert sorted(os.listdir(tmp_path / "c")) == sorted(
        f"{os.path.basename(first.report['cache_path'])[:-4]}{s}" for s in cache.SUFFIXES)
    assert second.describe()[0] == (f"read 9 images (3x8x8) from the cache in {second.report['seconds']:.2f} s "
                                    f"({second.report['cache_path']})")


def test_unlabelled_entry_has_no_labels_file(shapes, tmp_path):
    load_image_folder(shapes.root, cache_dir=tmp_path / "c")
    hit = load_image_folder(shapes.root, cache_dir=tmp_path / "c")
    assert hit.report["cache"] == "hit" and hit.y is None and hit.class_names == []
    assert not any(n.endswith(".labels.npy") for n in os.listdir(tmp_path / "c"))


def test_a_changed_file_or_option_misses(shapes, tmp_path):
    c = tmp_path / "c"
    assert load(shapes.root, c).report["cache"] == "miss"
    target = shapes.root / shapes.names[0]
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, newer mtime
    assert load(shapes.root, c).report["cache"] == "miss"
    assert load(shapes.root, c).report["cache"] == "hit"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(target, "PNG")  # new content and size
    changed = load(shapes.root, c)
    assert changed.report["cache"] == "miss"
    np.testing.assert_array_equal(changed.x[0, :, 0, 0], [1, 2, 3])
    (shapes.root / "circle" / "new.png").write_bytes(target.read_bytes())  # one more file
    assert load(shapes.root, c).report["cache"] == "miss"
    for option in ({"resolution": 4}, {"fit": "pad"}, {"channels": 1}, {"channels": 4}):
        assert load(shapes.root, c, **option).report["cache"] == "miss", option
        assert load(shapes.root, c, **option).report["cache"] == "hit", option
    assert load_image_folder(shapes.root, cache_dir=c).report["cache"] == "miss"  # labels are an option too


def test_a_new_decode_of_a_folder_replaces_its_older_entry(shapes, tmp_path):
    c = tmp_path / "c"
    load(shapes.root, c)
    load(shapes.root, c, fit="pad")  # other options: a second entry, kept
    other = write_shapes_folder(tmp_path / "other", 3, size=8)
    load_image_folder(other.root, cache_dir=c)  # another folder: kept
    (shapes.root / shapes.names[0]).write_bytes((shapes.root / shapes.names[1]).read_bytes())
    changed = load(shapes.root, c)
    assert changed.report["cache"] == "miss" and changed.report["replaced"] == 1
    assert len(os.listdir(c)) == 3 * 3 - 1  # three entries, the unlabelled one without a labels file
    assert load(shapes.root, c, fit="pad").report["cache"] == "miss"  # its folder changed too
    assert load_image_folder(other.root, cache_dir=c).report["cache"] == "hit"


def test_zip_invalidation_by_member_and_by_the_zip_itself(shapes, tmp_path):
    path = tmp_path / "s.zip"

    def write(extra=b""):
        with zipfile.ZipFile(path, "w") as zf:
            for name in shapes.names:
                zf.write(shapes.root / name, name)
            if extra:
                zf.writestr("notes.txt", extra)

    write()
    assert load(path, tmp_path / "c").report["cache"] == "miss"
    assert load(path, tmp_path / "c").report["cache"] == "hit"
    write(b"only a note changed")  # no image changed, but the zip did
    assert load(path, tmp_path / "c").report["cache"] == "miss"


def test_use_cache_false_reads_and_writes_nothing(shapes, tmp_path):
    load(shapes.root, tmp_path / "c")
    out = load(shapes.root, tmp_path / "c", use_cache=False)
    assert out.report["cache"] == "off" and out.report["cache_path"] is None
    assert out.describe()[0].endswith("(cache off)")
    load(shapes.root, tmp_path / "d", use_cache=False)
    assert not (tmp_path / "d").exists()


def test_a_crash_before_the_json_leaves_a_miss_not_garbage(shapes, tmp_path, monkeypatch):
    c = tmp_path / "c"

    def crash(path, meta):
        raise KeyboardInterrupt("killed between the arrays and the json")

    monkeypatch.setattr(cache, "_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        load(shapes.root, c)
    names = os.listdir(c)
    assert any(n.endswith(".npy") for n in names) and not any(n.endswith(".json") for n in names)
    monkeypatch.undo()
    again = load(shapes.root, c)
    assert again.report["cache"] == "miss"
    np.testing.assert_array_equal(again.x, shapes.pixels.transpose(0, 3, 1, 2))
    assert load(shapes.root, c).report["cache"] == "hit"


def test_a_crash_inside_a_write_leaves_no_temp_file(shapes, tmp_path, monkeypatch):
    def crash(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        load(shapes.root, tmp_path / "c")
    assert os.listdir(tmp_path / "c") == []


def test_a_truncated_array_or_a_bad_json_is_a_miss(shapes, tmp_path):
    c = tmp_path / "c"
    first = load(shapes.root, c)
    x_path = first.report["cache_path"]
    with open(x_path, "r+b") as f:
        f.truncate(os.path.getsize(x_path) - 10)
    assert load(shapes.root, c).report["cache"] == "miss"
    json_path = x_path[: -len(".npy")] + ".json"
    with open(json_path, "w") as f:
        f.write("{not json")
    assert load(shapes.root, c).report["cache"] == "miss"
    labels_path = x_path[: -len(".npy")] + ".labels.npy"
    np.save(labels_path, np.zeros(3, np.int64))  # a different size than the json records
    assert load(shapes.root, c).report["cache"] == "miss"
    meta = json.loads(open(json_path).read())
    meta["format"] = cache.FORMAT_VERSION + 1
    with open(json_path, "w") as f:
        json.dump(meta, f)
    assert load(shapes.root, c).report["cache"] == "miss"


def test_an_unwritable_cache_folder_is_a_warning(shapes, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    out = load(shapes.root, blocker / "cache")
    assert out.report["cache"] == "off" and len(out) == 9
    assert out.report["warnings"] == [
        f"could not write to the cache folder {blocker / 'cache'} (Not a directory); decoding again at every start"
    ]
    assert out.describe()[-1].startswith("warning: could not write to the cache folder")


def test_a_full_disk_leaves_no_half_entry_and_loading_goes_on(shapes, tmp_path, monkeypatch):
    def full(path, meta):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "_write_json", full)
    out = load(shapes.root, tmp_path / "c")
    assert out.report["cache"] == "off" and len(out) == 9 and os.listdir(tmp_path / "c") == []
    assert out.report["warnings"] == [
        f"could not write to the cache folder {tmp_path / 'c'} (No space left on device); decoding again at every start"
    ]


def test_cache_key_and_content_hash():
    base = cache.cache_key("/d", [["a.png", 10, 5]], {"fit": "crop"})
    assert base == cache.cache_key("/d", [["a.png", 10, 5]], {"fit": "crop"})
    assert len({base, cache.cache_key("/e", [["a.png", 10, 5]], {"fit": "crop"}),
                cache.cache_key("/d", [["a.png", 11, 5]], {"fit": "crop"}),
                cache.cache_key("/d", [["a.png", 10, 6]], {"fit": "crop"}),
                cache.cache_key("/d", [["a.png", 10, 5]], {"fit": "pad"})}) == 5
    x = np.arange(12, dtype=np.uint8).reshape(1, 3, 2, 2)
    assert cache.content_sha256(x) == cache.content_sha256(x.copy())
    assert cache.content_sha256(x) != cache.content_sha256(x.reshape(1, 1, 3, 4))
    assert cache.content_sha256(x) != cache.content_sha256(x, np.zeros(1, np.int64))


def test_size_and_clear(shapes, tmp_path):
    c = tmp_path / "c"
    load(shapes.root, c)
    (c / "unrelated.txt").write_text("kept")
    assert cache.cache_size(c) == sum(os.path.getsize(c / n) for n in os.listdir(c) if n != "unrelated.txt")
    assert cache.clear_cache(c) == 3 and os.listdir(c) == ["unrelated.txt"]
    assert cache.cache_size(tmp_path / "none") == 0


def test_second_start_on_5000_digits_is_under_a_second(tmp_path):
    folder = write_digit_folder(tmp_path / "d", n_per_class=500, jpeg_share=0, corrupt=0, rgba=0)
    first = load(folder.root, tmp_path / "c", resolution=28)
    second = load(folder.root, tmp_path / "c", resolution=28)
    print("\n".join(["", *first.describe()[:1], *second.describe()[:1]]))
    assert second.report["cache"] == "hit" and second.x.shape == (5000, 1, 28, 28)
    assert second.report["seconds"] < 1.0
    np.testing.assert_array_equal(second.x[:, 0], folder.pixels)
