"""The text panel: a PNG of the expected size, with and without the real-vs-generated charts."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from ganforge.fsio import WriteError
from ganforge.viz.text import save_text_panel

LINES = ["smith", "johnson", "", "o'brien $x$ {}", "a" * 80, "tab\there", "ünïcødé"] * 12  # 84 lines


def _size(path):
    with Image.open(path) as im:
        return im.format, im.size


def test_panel_alone_is_800_by_480(tmp_path):
    out = save_text_panel(LINES, tmp_path / "sub" / "panel.png", "step 1000")
    assert out == tmp_path / "sub" / "panel.png"
    assert _size(out) == ("PNG", (800, 480))
    assert os.listdir(tmp_path / "sub") == ["panel.png"]  # no temporary file left behind


def test_panel_with_real_lines_adds_the_charts(tmp_path):
    real = ["smith", "jones", "brown", "o'neil", "lee"] * 10
    out = save_text_panel(LINES, tmp_path / "panel.png", "step 1000", real_lines=real)
    assert _size(out) == ("PNG", (800, 840))


@pytest.mark.parametrize("lines", [[], [""], ["x"]])
def test_panel_of_few_or_empty_lines(tmp_path, lines):
    assert _size(save_text_panel(lines, tmp_path / "p.png", real_lines=["ab", "c"])) == ("PNG", (800, 840))


def test_panel_replaces_an_old_picture_atomically(tmp_path):
    path = tmp_path / "panel.png"
    path.write_bytes(b"old")
    save_text_panel(["a", "b"], path)
    assert _size(path) == ("PNG", (800, 480))


def test_unwritable_folder_is_one_line_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match=r"^cannot write the text panel .*file/p.png: "):
        save_text_panel(["a"], tmp_path / "file" / "p.png")
