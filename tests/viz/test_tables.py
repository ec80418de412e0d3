"""Table pictures: PNG size and panels, shared bins, exact bar shares, correlation matrices, errors, atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ganforge.config import ConfigError
from ganforge.fsio import WriteError
from ganforge.viz import tables as vt
from ganforge.viz.tables import save_table_picture, table_figure

KINDS = {"a": "continuous", "b": "continuous", "grade": "categorical", "n": "integer", "flag": "categorical",
         "when": "datetime", "city": "categorical"}


def table(n: int, seed: int) -> pd.DataFrame:
    """Every kind, with missing values in b and city."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, n)
    df = pd.DataFrame({
        "a": a,
        "b": 2 * a + rng.normal(0, 0.5, n),
        "grade": np.where(a > 0, "hi", "lo"),
        "n": rng.integers(0, 300, n),
        "flag": rng.random(n) < 0.3,
        "when": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
        "city": rng.choice(["Oslo", "Lima", "Pune"], n, p=[0.5, 0.3, 0.2]),
    })
    df.loc[rng.random(n) < 0.1, "b"] = np.nan
    df.loc[rng.random(n) < 0.1, "city"] = None
    return df


@pytest.fixture
def fig_of():
    figs = []

    def make(*args, **kwargs):
        figs.append(table_figure(*args, **kwargs))
        return figs[-1]

    yield make
    for f in figs:
        vt.plt.close(f)


def test_png_size_and_panels(tmp_path):
    real, synth = table(400, 0), table(300, 1)
    rng_state = torch.get_rng_state()
    out = save_table_picture(real, synth, KINDS, tmp_path / "pics" / "table.png", title="step 100")
    assert out == tmp_path / "pics" / "table.png"
    assert [p.name for p in out.parent.iterdir()] == ["table.png"]  # no temporary file left beside it
    # 7 columns: 2 rows of 4 panels (2.6 in), the correlation row (4.4 in), the title (0.4 in); 12.8 in wide; 100 dpi
    assert vt.figure_size(KINDS, "step 100") == pytest.approx((12.8, 10.0))
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (1280, 1000)
    torch.testing.assert_close(torch.get_rng_state(), rng_state)  # a picture never moves the run's randomness


def test_panel_titles_one_per_column_then_the_two_correlations(fig_of):
    fig = fig_of(table(400, 0), table(300, 1), KINDS, title="t")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["a (continuous)", "b (continuous)", "grade (categorical)", "n (integer)",
                      "flag (categorical)", "when (datetime)", "city (categorical)",
                      "real: Pearson correlation", "synthetic: Pearson correlation", ""]  # "" the colour bar
    assert fig.axes[-1].get_ylabel() == "Pearson r"
    assert fig.get_suptitle() == "t"


def test_histograms_share_their_bins(fig_of):
    real, synth = table(400, 0), table(300, 1)
    synth["a"] = synth["a"] * 3 + 5  # a wider, shifted synthetic column
    real["b"], synth["b"] = real["a"], synth["a"]
    real.loc[:39, "b"] = np.nan  # 40 of 400 real values missing, no synthetic one
    fig = fig_of(real, synth, {"a": "continuous", "b": "continuous"})
    panel = fig.axes[0]
    real_poly, synth_poly = panel.patches  # stepfilled: one polygon per table
    xs_real = np.unique(real_poly.get_xy()[:, 0])
    xs_synth = np.unique(synth_poly.get_xy()[:, 0])
    np.testing.assert_array_equal(xs_real, xs_synth)
    assert len(xs_real) == vt.BINS + 1
    lo = min(np.percentile(real["a"], 0.5), np.percentile(synth["a"], 0.5))
    hi = max(np.percentile(real["a"], 99.5), np.percentile(synth["a"], 99.5))
    assert xs_real[0] == pytest.approx(lo) and xs_real[-1] == pytest.approx(hi)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["real (10% missing)", "synthetic"]


def test_bars_are_each_values_share_of_the_rows(fig_of):
    real = pd.DataFrame({"c": ["x"] * 6 + ["y"] * 3 + [None]})
    synth = pd.DataFrame({"c": ["y"] * 2 + ["z"] * 2})  # no x; z is never real
    fig = fig_of(real, synth, {"c": "categorical"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", vt.MISSING]  # most frequent real first
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.6, 0.3, 0.1, 0.0, 0.5, 0.0])  # real bars, then synthetic ones


def test_at_most_the_twenty_most_frequent_real_categories(fig_of):
    values = [f"v{i:02d}" for i in range(25) for _ in range(25 - i)]  # v00 most frequent ... v24 least
    real = pd.DataFrame({"c": values})
    fig = fig_of(real, real, {"c": "categorical"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"v{i:02d}" for i in range(20)]
    assert len(ax.patches) == 40
    assert ax.get_title() == "c (categorical, top 20 of 25)"


def test_correlation_matrices_are_pearson_and_constant_columns_blank(fig_of):
    real, synth = table(400, 0), table(300, 1)
    synth["n"] = 7  # constant: no correlation
    kinds = {"a": "continuous", "b": "continuous", "n": "integer", "grade": "categorical"}
    fig = fig_of(real, synth, kinds)
    real_ax, synth_ax = fig.axes[4], fig.axes[5]
    expected = real[["a", "b", "n"]].astype(float).corr().to_numpy()
    np.testing.assert_allclose(real_ax.images[0].get_array().filled(np.nan), expected)
    shown = synth_ax.images[0].get_array()
    assert shown.mask[2].all() and shown.mask[:, 2].all() and not shown.mask[:2, :2].any()
    texts = [t.get_text() for t in synth_ax.texts]
    assert texts[0] == "1.00" and texts.count("n/a") == 5  # row and column of n


def test_a_column_missing_in_both_tables_says_so(fig_of):
    real = pd.DataFrame({"a": [np.nan, np.nan], "b": [1.0, 2.0]})
    fig = fig_of(real, real, {"a": "continuous", "b": "continuous"})
    assert [t.get_text() for t in fig.axes[0].texts] == ["every value missing"]
    assert len(fig.axes[0].patches) == 0
    assert len(fig.axes[1].patches) == 2  # two values: the outer bins hold them


def test_one_numeric_column_has_no_correlation_row(tmp_path, fig_of):
    kinds = {"a": "continuous", "grade": "categorical"}
    fig = fig_of(table(100, 0), table(100, 1), kinds)
    assert len(fig.axes) == 2
    out = save_table_picture(table(100, 0), table(100, 1), kinds, tmp_path / "t.png")
    with Image.open(out) as img:
        assert img.size == (1280, 260)  # one row of panels


def test_errors_are_one_line(tmp_path):
    real = table(50, 0)
    with pytest.raises(ConfigError, match=r"^the synthetic table has no column 'city'$"):
        save_table_picture(real, real.drop(columns="city"), KINDS, tmp_path / "t.png")
    with pytest.raises(ConfigError, match=r"^table picture: the table has no columns$"):
        save_table_picture(real, real, {}, tmp_path / "t.png")
    (tmp_path / "file").write_text("")
    with pytest.raises(WriteError, match=r"^cannot write table picture .*file/t\.png: "):
        save_table_picture(real, real, KINDS, tmp_path / "file" / "t.png")
