"""Animations of sample pictures: frame count, size, duration, order, labels, MP4 when ffmpeg exists."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from ganforge.viz import animation

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def _pictures(folder, steps=(10, 200, 1000000), size=(40, 30)) -> list:
    paths = []
    for step, colour in zip(steps, COLOURS, strict=False):
        p = folder / f"step_{step:06d}.png"
        Image.new("RGB", size, colour).save(p)
        paths.append(p)
    return paths


def _frames(path) -> list[tuple[np.ndarray, int]]:
    out = []
    with Image.open(path) as gif:
        for i in range(gif.n_frames):
            gif.seek(i)
            out.append((np.asarray(gif.convert("RGB")), gif.info["duration"]))
    return out


def test_gif_frames_size_duration_and_order(tmp_path):
    paths = _pictures(tmp_path)
    out = animation.make_animation(paths, tmp_path / "anim" / "samples.gif", fps=4)
    assert out == tmp_path / "anim" / "samples.gif"
    frames = _frames(out)
    assert len(frames) == 3
    band = frames[0][0].shape[0] - 30
    assert band > 8  # a label band above each 40x30 picture
    for (pixels, duration), colour in zip(frames, COLOURS, strict=True):
        assert pixels.shape == (30 + band, 40, 3)
        assert duration == 250  # 1000 ms / 4 fps
        np.testing.assert_array_equal(pixels[band:], np.broadcast_to(colour, (30, 40, 3)))
        assert (pixels[:band] < 128).any() and (pixels[:band] == 255).any()  # dark text on white
    assert not np.array_equal(frames[0][0][:band], frames[1][0][:band])  # different step labels


def test_frames_of_another_size_are_resized_to_the_first(tmp_path):
    a = _pictures(tmp_path, steps=(1,))[0]
    b = tmp_path / "step_000002.png"
    Image.new("RGB", (80, 60), (0, 0, 255)).save(b)
    frames = _frames(animation.make_animation([a, b], tmp_path / "x.gif", fps=2))
    assert frames[0][0].shape == frames[1][0].shape
    assert [d for _, d in frames] == [500, 500]


def test_labels_and_numeric_step_order(tmp_path):
    _pictures(tmp_path)
    (tmp_path / "other.png").write_bytes(b"")
    assert [p.name for p in animation.sample_pictures(tmp_path)] == [
        "step_000010.png", "step_000200.png", "step_1000000.png"]
    assert animation.frame_label(tmp_path / "step_000200.png") == "step 200"
    assert animation.frame_label("final.png") == "final"


def test_user_errors(tmp_path, monkeypatch):
    paths = _pictures(tmp_path)
    with pytest.raises(ValueError, match=r"^make_animation: png_paths is empty"):
        animation.make_animation([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match=r"^make_animation: fps must be positive, got 0$"):
        animation.make_animation(paths, tmp_path / "a.gif", fps=0)
    with pytest.raises(ValueError, match=r"^make_animation: out_path must end in .gif or .mp4, got 'a.avi'$"):
        animation.make_animation(paths, tmp_path / "a.avi")
    monkeypatch.setattr(animation, "ffmpeg_exe", lambda: None)
    no_ffmpeg = r"^make_animation: writing .mp4 needs ffmpeg .*write a .gif instead$"
    with pytest.raises(RuntimeError, match=no_ffmpeg):
        animation.make_animation(paths, tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


def test_mp4_when_ffmpeg_is_available(tmp_path):
    exe = animation.ffmpeg_exe()
    if exe is None:
        pytest.skip("ffmpeg not available: pip install imageio-ffmpeg")
    out = animation.make_animation(_pictures(tmp_path), tmp_path / "samples.mp4", fps=4)
    decode = [exe, "-i", str(out), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    probe = subprocess.run(decode, capture_output=True)
    assert probe.returncode == 0
    stderr = probe.stderr.decode()
    assert "Video: h264" in stderr and "4 fps" in stderr
    band = _frames(animation.make_animation(_pictures(tmp_path), tmp_path / "s.gif"))[0][0].shape[0] - 30
    height = 30 + band + (30 + band) % 2  # padded to even
    decoded = np.frombuffer(probe.stdout, np.uint8).reshape(-1, height, 40, 3)  # (frames, H, W, 3)
    assert len(decoded) == 3
    centre = decoded[:, band + 15, 20].astype(int)  # middle of each picture, after lossy coding
    assert np.abs(centre - np.array(COLOURS)).max() < 40
