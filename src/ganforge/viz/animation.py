"""Animations of the sample pictures over training: an animated GIF (Pillow) or an MP4 (ffmpeg)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

STEP = re.compile(r"step_(\d+)")  # samples/step_000500.png -> 500
NO_FFMPEG = "writing .mp4 needs ffmpeg (pip install imageio-ffmpeg, or install ffmpeg on PATH); write a .gif instead"


def frame_label(path: str | Path) -> str:
    """'step 500' for samples/step_000500.png, else the file's stem."""
    m = STEP.search(Path(path).stem)
    return f"step {int(m.group(1))}" if m else Path(path).stem


def labelled_frame(pic: Image.Image, text: str) -> Image.Image:
    """The picture (RGB) under a white band holding `text`."""
    try:  # a label readable on big frames; size= needs Pillow >= 10.1
        font = ImageFont.load_default(size=max(10, pic.width // 32))
    except TypeError:
        font = ImageFont.load_default()
    left, top, right, bottom = ImageDraw.Draw(pic).textbbox((0, 0), text, font=font)
    band = bottom - top + 8
    frame = Image.new("RGB", (pic.width, pic.height + band), "white")
    frame.paste(pic, (0, band))
    ImageDraw.Draw(frame).text((4, 4 - top), text, fill="black", font=font)
    return frame


def _read_rgb(path: str | Path, size: tuple[int, int] | None) -> Image.Image:
    with Image.open(path) as img:
        pic = img.convert("RGB")
    return pic if size is None or pic.size == size else pic.resize(size, Image.NEAREST)


def sample_pictures(folder: str | Path) -> list[Path]:
    """The step_XXXXXX.png pictures in `folder`, in step order (numeric, so step 1000000 sorts last)."""
    paths = [p for p in Path(folder).glob("step_*.png") if STEP.search(p.stem)]
    return sorted(paths, key=lambda p: int(STEP.search(p.stem).group(1)))


def ffmpeg_exe() -> str | None:
    """Path of an ffmpeg binary: imageio-ffmpeg's bundled one, else one on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def make_animation(png_paths: list[str | Path], out_path: str | Path, fps: float = 4) -> Path:
    """Write the pictures, in the order given, as an animation: .gif (always) or .mp4 (needs ffmpeg).

    Each frame is labelled with the step read from its file name (step_XXXXXX.png); frames are
    resized to the first picture's size if they differ.
    """
    out = Path(out_path)
    suffix = out.suffix.lower()
    if not png_paths:
        raise ValueError("make_animation: png_paths is empty (no sample pictures to animate)")
    if fps <= 0:
        raise ValueError(f"make_animation: fps must be positive, got {fps}")
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"make_animation: out_path must end in .gif or .mp4, got '{out.name}'")
    if suffix == ".mp4" and ffmpeg_exe() is None:
        raise RuntimeError(f"make_animation: {NO_FFMPEG}")
    size = _read_rgb(png_paths[0], None).size
    return write_frames([labelled_frame(_read_rgb(p, size), frame_label(p)) for p in png_paths], out, fps)


GIF_MAX_DELAY_MS = 655_350  # a GIF frame's delay is 16 bits of 1/100 s


class GifTooSlow(ValueError):
    """A GIF would hold one picture longer than GIF_MAX_DELAY_MS."""


def longest_gif_hold(frames: list[Image.Image], fps: float) -> float:
    """Seconds the longest run of identical frames stays on screen in a GIF (Pillow merges such runs into one
    frame whose delay is their sum)."""
    run = longest = 1
    for a, b in zip(frames, frames[1:], strict=False):
        run = run + 1 if a.tobytes() == b.tobytes() else 1
        longest = max(longest, run)
    return longest * round(1000 / fps) / 1000


def write_frames(frames: list[Image.Image], out_path: str | Path, fps: float) -> Path:
    """Write same-size frames as an animated GIF (looping) or, for a .mp4 path, an H.264 video through ffmpeg.

    A GIF that would hold one picture longer than GIF's 655 s is GifTooSlow (nothing is written).
    """
    out = Path(out_path)
    if out.suffix.lower() != ".mp4" and (hold := longest_gif_hold(frames, fps)) * 1000 > GIF_MAX_DELAY_MS:
        raise GifTooSlow(f"at {fps:g} frames per second a GIF would show one picture for {hold:g} s; GIF frames "
                         f"last at most {GIF_MAX_DELAY_MS // 1000} s (raise the frame rate, or write .mp4)")
    exe = ffmpeg_exe() if out.suffix.lower() == ".mp4" else None
    if out.suffix.lower() == ".mp4" and exe is None:
        raise RuntimeError(f"write_frames: {NO_FFMPEG}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if exe is None:
        # GIF stores durations in 1/100 s; loop=0 repeats forever.
        frames[0].save(out, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    else:
        _write_mp4([f.convert("RGB") for f in frames], out, fps, exe)
    return out


def _write_mp4(frames: list[Image.Image], out: Path, fps: float, exe: str) -> None:
    """Pipe raw RGB frames to ffmpeg: H.264, yuv420p (plays everywhere), sides padded to even numbers."""
    w, h = frames[0].size
    cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(fps), "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2:color=white", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(out)]
    data = b"".join(f.tobytes() for f in frames)
    proc = subprocess.run(cmd, input=data, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"make_animation: ffmpeg failed: {proc.stderr.decode(errors='replace').strip()}")
