"""One picture of a synthetic table against the real one: a panel per column and the two correlation matrices.

Numeric columns (continuous, integer, datetime) get real and synthetic histograms over the same bins (density,
from the lowest 0.5th to the highest 99.5th percentile of the two tables, values beyond counted in the outer bins;
missing values left out, their share in the legend); categorical columns get bars of each value's
share of the rows, the most frequent real values first (at most MAX_CATEGORIES). Below, the Pearson correlation
matrices of the numeric columns, real and synthetic, side by side on one colour scale.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never open a window
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ganforge.config import ConfigError  # noqa: E402
from ganforge.fsio import atomic_path  # noqa: E402
from ganforge.metrics.tables import NUMERIC_KINDS, numeric_values, require_columns  # noqa: E402

PANEL_COLUMNS = 4  # column panels per row; the two correlation matrices share one row of this width
PANEL_SIZE = (3.2, 2.6)  # inches per column panel
CORRELATION_HEIGHT = 4.4  # inches of the correlation row
TITLE_HEIGHT = 0.4  # inches added for a title
DPI = 100
BINS = 40  # histogram bins over the joint range of the real and synthetic values ...
TRIM = 99.5  # ... from the lowest 100-TRIM to the highest TRIM percentile of either (values beyond counted in the
#               outer bins): rare outliers do not squash the picture
MAX_CATEGORIES = 20  # bars per categorical column: its most frequent real values
LABEL_CHARS = 28  # characters of bar labels that fit side by side under a panel
MISSING = "(missing)"  # the bar of missing categorical values
NS_PER_DAY = 86_400 * 10**9  # matplotlib dates are days since 1970-01-01
COLOURS = {"real": "tab:blue", "synthetic": "tab:orange"}


def figure_size(kinds: dict[str, str], title: str = "") -> tuple[float, float]:
    """The picture's size in inches (width, height) for these columns: DPI times it is the PNG's pixel size."""
    rows = math.ceil(len(kinds) / PANEL_COLUMNS)
    numeric = sum(k in NUMERIC_KINDS for k in kinds.values())
    height = rows * PANEL_SIZE[1] + (CORRELATION_HEIGHT if numeric >= 2 else 0.0) + (TITLE_HEIGHT if title else 0.0)
    return PANEL_COLUMNS * PANEL_SIZE[0], height


def table_figure(real: pd.DataFrame, synth: pd.DataFrame, kinds: dict[str, str], title: str = "") -> Figure:
    """The matplotlib Figure of `save_table_picture` (the caller closes it)."""
    if not kinds:
        raise ConfigError("table picture: the table has no columns")
    require_columns(real, kinds, "real")
    require_columns(synth, kinds, "synthetic")
    names = list(kinds)
    numeric = [c for c in names if kinds[c] in NUMERIC_KINDS]
    rows = math.ceil(len(names) / PANEL_COLUMNS)
    heights = [PANEL_SIZE[1]] * rows + ([CORRELATION_HEIGHT] if len(numeric) >= 2 else [])
    fig = plt.figure(figsize=figure_size(kinds, title), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(len(heights), PANEL_COLUMNS, height_ratios=heights)
    for i, c in enumerate(names):
        ax = fig.add_subplot(grid[i // PANEL_COLUMNS, i % PANEL_COLUMNS])
        if kinds[c] in NUMERIC_KINDS:
            _histograms(ax, c, kinds[c], real[c], synth[c])
        else:
            _bars(ax, c, real[c], synth[c])
    if len(numeric) >= 2:
        half = PANEL_COLUMNS // 2
        axes = [fig.add_subplot(grid[rows, :half]), fig.add_subplot(grid[rows, half:])]
        for ax, df, who in zip(axes, (real, synth), ("real", "synthetic"), strict=True):
            image = _correlations(ax, df, numeric, kinds, who)
        fig.colorbar(image, ax=axes, shrink=0.8, label="Pearson r")
    if title:
        fig.suptitle(title)
    return fig


def save_table_picture(real: pd.DataFrame, synth: pd.DataFrame, kinds: dict[str, str], path: str | Path,
                       title: str = "") -> Path:
    """Write real vs synthetic per-column histograms/bars and both correlation matrices as one PNG, atomically."""
    fig = table_figure(real, synth, kinds, title)
    try:
        with atomic_path(path, "table picture ") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def _legend_label(who: str, values: np.ndarray) -> str:
    """'real' or 'synthetic', with the share of missing values when there are any."""
    missing = float(np.isnan(values).mean()) if len(values) else 0.0
    return f"{who} ({missing:.0%} missing)" if missing > 0 else who


def _histograms(ax, name: str, kind: str, real: pd.Series, synth: pd.Series) -> None:
    """Real and synthetic densities of one numeric column over the same BINS bins."""
    values = {"real": numeric_values(real, kind), "synthetic": numeric_values(synth, kind)}
    present = {who: v[~np.isnan(v)] / (NS_PER_DAY if kind == "datetime" else 1.0) for who, v in values.items()}
    ax.set_title(f"{name} ({kind})", fontsize=9)
    if not any(len(v) for v in present.values()):
        ax.text(0.5, 0.5, "every value missing", ha="center", va="center", transform=ax.transAxes)
        return
    spans = [np.percentile(v, [100 - TRIM, TRIM]) for v in present.values() if len(v)]  # [(lo, hi), ...]
    lo, hi = min(float(a) for a, _ in spans), max(float(b) for _, b in spans)
    if lo == hi:  # one value in both tables: a bin around it
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, BINS + 1)
    for who, v in present.items():
        if len(v):
            ax.hist(np.clip(v, lo, hi), bins=edges, density=True, histtype="stepfilled", alpha=0.5, color=COLOURS[who],
                    label=_legend_label(who, values[who]))
    if kind == "datetime":
        locator = mdates.AutoDateLocator(maxticks=4)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)


def _bars(ax, name: str, real: pd.Series, synth: pd.Series) -> None:
    """Each value's share of the real and of the synthetic rows, the MAX_CATEGORIES most frequent real ones."""
    labelled = [s.astype(object).where(s.notna(), MISSING) for s in (real, synth)]
    counts = labelled[0].value_counts(sort=True)
    shown = counts.index[:MAX_CATEGORIES]
    shares = {"real": counts[shown] / max(len(real), 1),
              "synthetic": labelled[1].value_counts().reindex(shown, fill_value=0) / max(len(synth), 1)}
    x = np.arange(len(shown))
    for offset, (who, share) in zip((-0.2, 0.2), shares.items(), strict=True):
        ax.bar(x + offset, share.to_numpy(dtype=np.float64), width=0.4, color=COLOURS[who], label=who)
    labels = [str(v) for v in shown]
    upright = max(map(len, labels)) * len(labels) <= LABEL_CHARS  # else the labels would overlap: turn them
    ax.set_xticks(x, labels, rotation=0 if upright else 90, fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    more = f", top {MAX_CATEGORIES} of {len(counts)}" if len(counts) > MAX_CATEGORIES else ""
    ax.set_title(f"{name} (categorical{more})", fontsize=9)
    ax.set_ylabel("share of rows", fontsize=7)
    ax.legend(fontsize=7)


def _correlations(ax, df: pd.DataFrame, numeric: list[str], kinds: dict[str, str], who: str):
    """Draw the Pearson correlation matrix of the numeric columns (pairwise complete rows); return the image."""
    values = pd.DataFrame({c: numeric_values(df[c], kinds[c]) for c in numeric})
    r = values.corr(method="pearson").to_numpy()  # (C, C); NaN where a column is constant
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(r), cmap=cmap, vmin=-1, vmax=1)
    ticks = np.arange(len(numeric))
    ax.set_xticks(ticks, numeric, rotation=90, fontsize=7)
    ax.set_yticks(ticks, numeric, fontsize=7)
    if len(numeric) <= 12:  # room for the numbers
        for i, j in np.ndindex(r.shape):
            text = "n/a" if np.isnan(r[i, j]) else f"{r[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=6,
                    color="white" if abs(np.nan_to_num(r[i, j])) > 0.6 else "black")
    ax.set_title(f"{who}: Pearson correlation", fontsize=9)
    return image
