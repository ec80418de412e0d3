"""A picture of generated text lines: a monospace panel of samples, and real-vs-generated lengths and characters."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganforge import fsio  # noqa: E402

MAX_LINES = 64  # lines shown in the panel
COLUMNS = 4
MAX_CHARS = 22  # a longer line is cut, ending in an ellipsis, so the columns never overlap
TOP_CHARS = 20  # characters in the frequency chart
DPI = 100
PANEL_SIZE = (8.0, 4.8)  # inches: 800 x 480 pixels
FULL_SIZE = (8.0, 8.4)  # with the histograms: 800 x 840 pixels


def _shown(line: str) -> str:
    """A line as the panel prints it: empty lines visible, control characters escaped, long lines cut."""
    if not line:
        return "(empty)"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _char_label(c: str) -> str:
    return "␣" if c == " " else (c if c.isprintable() else repr(c)[1:-1])


def _draw_lines(ax, lines: list[str], title: str) -> None:
    """Up to MAX_LINES lines in COLUMNS monospace columns, filled column by column."""
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    shown = lines[:MAX_LINES]
    if not shown:
        ax.text(0.5, 0.5, "(no samples)", ha="center", va="center", family="monospace", parse_math=False)
        return
    rows = -(-len(shown) // COLUMNS)  # ceil
    for i, line in enumerate(shown):
        col, row = divmod(i, rows)
        ax.text(col / COLUMNS + 0.01, 1.0 - (row + 0.5) / max(rows, 16), _shown(line), family="monospace",
                fontsize=9, va="center", ha="left", parse_math=False, transform=ax.transAxes)


def _draw_lengths(ax, lines: list[str], real_lines: list[str]) -> None:
    """Histograms (shares) of line lengths in characters, real vs generated."""
    gen, real = np.array([len(s) for s in lines]), np.array([len(s) for s in real_lines])
    top = int(max(gen.max(initial=0), real.max(initial=0)))
    bins = np.arange(top + 2) - 0.5  # one bin per length 0..top
    ax.hist(real, bins=bins, density=True, alpha=0.5, color="tab:gray", label=f"real (n={len(real)})")
    if len(gen):  # density of nothing is 0/0
        ax.hist(gen, bins=bins, density=True, histtype="step", lw=1.5, color="tab:blue",
                label=f"generated (n={len(gen)})")
    ax.set_xlabel("line length (characters)")
    ax.set_ylabel("share of lines")
    ax.legend(fontsize=7)


def _draw_chars(ax, lines: list[str], real_lines: list[str]) -> None:
    """Shares of the TOP_CHARS most frequent real characters, real vs generated, side by side."""
    real, gen = Counter("".join(real_lines)), Counter("".join(lines))
    chars = [c for c, _ in real.most_common(TOP_CHARS)]
    r_tot, g_tot = max(sum(real.values()), 1), max(sum(gen.values()), 1)
    x = np.arange(len(chars))
    ax.bar(x - 0.2, [real[c] / r_tot for c in chars], 0.4, color="tab:gray", label="real")
    ax.bar(x + 0.2, [gen[c] / g_tot for c in chars], 0.4, color="tab:blue", label="generated")
    ax.set_xticks(x, [_char_label(c) for c in chars], family="monospace")
    ax.set_ylabel("share of characters")
    ax.set_title(f"{len(chars)} most frequent characters", fontsize=9)
    ax.legend(fontsize=7)


def save_text_panel(lines: list[str], path: str | Path, title: str = "",
                    real_lines: list[str] | None = None) -> Path:
    """A PNG of up to 64 lines in a monospace grid; with `real_lines`, also length and character charts.

    The picture is 800 x 480 pixels, or 800 x 840 with the charts; written atomically (never half a file).
    """
    lines = [str(s) for s in lines]
    if real_lines is None:
        fig, ax = plt.subplots(figsize=PANEL_SIZE, dpi=DPI)
        _draw_lines(ax, lines, title)
    else:
        fig = plt.figure(figsize=FULL_SIZE, dpi=DPI)
        grid = fig.add_gridspec(2, 2, height_ratios=[4.8, 3.6])
        _draw_lines(fig.add_subplot(grid[0, :]), lines, title)
        _draw_lengths(fig.add_subplot(grid[1, 0]), lines, list(real_lines))
        _draw_chars(fig.add_subplot(grid[1, 1]), lines, list(real_lines))
    fig.tight_layout()
    try:
        with fsio.atomic_path(path, "the text panel ") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)
