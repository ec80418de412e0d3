"""Synthetic-table metrics: SDMetrics' QualityReport, ML efficacy (train on synthetic, test on real), privacy (DCR).

`quality_report` reproduces sdmetrics 0.32's single-table QualityReport without importing it:
  Column Shapes       per column: KSComplement (1 - Kolmogorov-Smirnov D) for continuous/integer/datetime,
                      TVComplement (1 - total variation distance) for categoricals; missing values dropped.
  Column Pair Trends  per pair: CorrelationSimilarity 1 - |r_real - r_synth| / 2 (Pearson) for two numeric
                      columns, ContingencySimilarity 1 - TV of the joint frequencies for two categoricals and for
                      mixed pairs, where the numeric column is cut into np.histogram_bin_edges' 10 bins (each
                      table cut at its own edges, as sdmetrics does). Since sdmetrics 0.2x a pair only counts
                      when the real data shows a trend: |r_real| > 0.5, or Cramer's V of the real pair > 0.3.
  overall             mean of the two properties (the pair property is skipped when no pair counts).
The `*_all_pairs` values average every pair instead, as sdmetrics did before those thresholds.
Where sdmetrics subsamples a contingency pair to 50,000 rows at random, this module uses every row.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from ganforge.config import ConfigError

NUMERIC_KINDS = ("continuous", "integer", "datetime")
REAL_CORRELATION_THRESHOLD = 0.5  # sdmetrics.reports.utils.DEFAULT_REAL_CORRELATION_THRESHOLD
REAL_ASSOCIATION_THRESHOLD = 0.3  # sdmetrics.reports.utils.DEFAULT_REAL_ASSOCIATION_THRESHOLD
KS_DECIMALS = 14  # sdmetrics rounds values to sys.float_info.dig - 1 decimals before the KS test


def numeric_values(s: pd.Series, kind: str) -> np.ndarray:
    """float64 values (NaN where missing); datetimes as nanoseconds since 1970."""
    if kind == "datetime":
        t = pd.to_datetime(s)
        if t.dt.tz is not None:
            t = t.dt.tz_convert("UTC").dt.tz_localize(None)
        return np.where(t.isna(), np.nan, t.astype("datetime64[ns]").to_numpy().view(np.int64).astype(np.float64))
    return pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)


def require_columns(df: pd.DataFrame, kinds: dict[str, str], what: str) -> None:
    """ConfigError naming the first column of `kinds` that `df` lacks, or an unknown kind."""
    absent = [c for c in kinds if c not in df.columns]
    if absent:
        raise ConfigError(f"the {what} table has no column {absent[0]!r}")
    bad = [k for k in kinds.values() if k not in NUMERIC_KINDS + ("categorical",)]
    if bad:
        raise ConfigError(f"unknown column kind {bad[0]!r}")


# --------------------------------------------------------------------------------------------------
# Single-column and pair metrics


def ks_complement(real: np.ndarray, synth: np.ndarray) -> float:
    """sdmetrics KSComplement: 1 - sup |F_real - F_synth| over the non-missing values (NaN if either is empty)."""
    from scipy.stats import ks_2samp

    r, s = real[~np.isnan(real)].round(KS_DECIMALS), synth[~np.isnan(synth)].round(KS_DECIMALS)
    if len(r) == 0 or len(s) == 0:
        return float("nan")
    return float(1.0 - ks_2samp(r, s).statistic)


def tv_complement(real: pd.Series, synth: pd.Series) -> float:
    """sdmetrics TVComplement: 1 - (1/2) sum_v |p_real(v) - p_synth(v)| over the non-missing values."""
    r, s = real.dropna(), synth.dropna()
    if len(r) == 0 or len(s) == 0:
        return float("nan")
    p = pd.concat([r.value_counts(normalize=True), s.value_counts(normalize=True)], axis=1).fillna(0.0)
    return float(1.0 - 0.5 * np.abs(p.iloc[:, 0] - p.iloc[:, 1]).sum())


def correlation_similarity(real: tuple[np.ndarray, np.ndarray], synth: tuple[np.ndarray, np.ndarray]
                           ) -> tuple[float, float, float]:
    """sdmetrics CorrelationSimilarity (Pearson): (1 - |r_real - r_synth| / 2, r_real, r_synth); NaN if undefined."""
    rs = []
    for a, b in (real, synth):
        if len(np.unique(a[~np.isnan(a)])) == 1 or len(np.unique(b[~np.isnan(b)])) == 1:
            return float("nan"), float("nan"), float("nan")  # sdmetrics: constant data has no correlation
        ok = ~(np.isnan(a) | np.isnan(b))
        rs.append(float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() >= 2 else float("nan"))
    score = 1.0 - abs(rs[0] - rs[1]) / 2.0
    return score, rs[0], rs[1]


def contingency_similarity(real: tuple[pd.Series, pd.Series], synth: tuple[pd.Series, pd.Series]
                           ) -> tuple[float, float]:
    """sdmetrics ContingencySimilarity: (1 - TV of the joint frequencies, Cramer's V of the real pair).

    Missing values are a category of their own (sdmetrics groups with dropna=False).
    """
    from scipy.stats.contingency import association

    n_real = len(real[0])
    codes = []
    for i in range(2):
        both = pd.concat([real[i], synth[i]], ignore_index=True).astype(object)
        codes.append(pd.factorize(both, use_na_sentinel=False)[0])  # shared codes, NaN a code of its own
    n_a, n_b = codes[0].max() + 1, codes[1].max() + 1
    joint = codes[0] * n_b + codes[1]  # (N_real + N_synth,)
    count_r = np.bincount(joint[:n_real], minlength=n_a * n_b).astype(np.float64)
    count_s = np.bincount(joint[n_real:], minlength=n_a * n_b).astype(np.float64)
    score = 1.0 - 0.5 * np.abs(count_r / count_r.sum() - count_s / count_s.sum()).sum()
    table = count_r.reshape(n_a, n_b)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]  # the real values only, as sdmetrics' unstack
    v = float(association(table.astype(np.int64), method="cramer")) if min(table.shape) >= 2 else float("nan")
    return float(score), v


def _bins(x: np.ndarray) -> np.ndarray:
    """sdmetrics' discretisation for mixed pairs: np.digitize on 10 histogram bins of this table's own values."""
    return np.digitize(x, np.histogram_bin_edges(x[~np.isnan(x)]))  # NaN and the maximum land in bin 11


# --------------------------------------------------------------------------------------------------
# The quality report


def quality_report(real: pd.DataFrame, synth: pd.DataFrame, kinds: dict[str, str],
                   real_correlation_threshold: float = REAL_CORRELATION_THRESHOLD,
                   real_association_threshold: float = REAL_ASSOCIATION_THRESHOLD) -> dict[str, Any]:
    """SDMetrics QualityReport scores (overall, column_shapes, column_pair_trends) with per-column/pair detail."""
    require_columns(real, kinds, "real")
    require_columns(synth, kinds, "synthetic")
    names = list(kinds)
    num_r = {c: numeric_values(real[c], k) for c, k in kinds.items() if k in NUMERIC_KINDS}
    num_s = {c: numeric_values(synth[c], k) for c, k in kinds.items() if k in NUMERIC_KINDS}
    columns = {}
    for c in names:
        if c in num_r:
            columns[c] = {"metric": "KSComplement", "score": _nan_none(ks_complement(num_r[c], num_s[c]))}
        else:
            columns[c] = {"metric": "TVComplement", "score": _nan_none(tv_complement(real[c], synth[c]))}
    bins_r = {c: pd.Series(_bins(x)) for c, x in num_r.items()}
    bins_s = {c: pd.Series(_bins(x)) for c, x in num_s.items()}
    pairs = []
    for a, b in itertools.combinations(names, 2):
        if a in num_r and b in num_r:
            score, r, s = correlation_similarity((num_r[a], num_r[b]), (num_s[a], num_s[b]))
            counted = not np.isnan(r) and abs(r) > real_correlation_threshold
            pairs.append({"columns": [a, b], "metric": "CorrelationSimilarity", "score": score, "real": r,
                          "synthetic": s, "real_association": float("nan"), "counted": counted})
        else:
            col_r = [bins_r[c] if c in num_r else real[c].reset_index(drop=True) for c in (a, b)]
            col_s = [bins_s[c] if c in num_s else synth[c].reset_index(drop=True) for c in (a, b)]
            score, v = contingency_similarity(tuple(col_r), tuple(col_s))
            counted = not np.isnan(v) and v > real_association_threshold
            pairs.append({"columns": [a, b], "metric": "ContingencySimilarity", "score": score,
                          "real": float("nan"), "synthetic": float("nan"), "real_association": v, "counted": counted})
    shapes = _mean([c["score"] for c in columns.values()])
    trends = _mean([p["score"] for p in pairs if p["counted"]])
    trends_all = _mean([p["score"] for p in pairs])
    for p in pairs:
        for key in ("score", "real", "synthetic", "real_association"):
            p[key] = _nan_none(p[key])
    return {
        "overall": _mean([shapes, trends]),
        "column_shapes": shapes,
        "column_pair_trends": trends,
        "overall_all_pairs": _mean([shapes, trends_all]),
        "column_pair_trends_all_pairs": trends_all,
        "columns": columns,
        "pairs": pairs,
    }


def _mean(values) -> float | None:
    """Mean of the values that are numbers (None and NaN skipped); None when there are none."""
    ok = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(ok)) if ok else None


def _nan_none(v: float) -> float | None:
    return None if v is None or np.isnan(v) else float(v)


def sdmetrics_metadata(kinds: dict[str, str]) -> dict[str, Any]:
    """The sdmetrics single-table metadata for `kinds` (to run sdmetrics' own report on the same table)."""
    sdtype = {"continuous": "numerical", "integer": "numerical", "datetime": "datetime", "categorical": "categorical"}
    return {"columns": {c: {"sdtype": sdtype[k]} for c, k in kinds.items()}}


# --------------------------------------------------------------------------------------------------
# ML efficacy


def _design(dfs: list[pd.DataFrame], features: list[str], kinds: dict[str, str]) -> tuple[list[np.ndarray], list]:
    """Feature matrices for HistGradientBoosting: numbers as floats, categoricals as codes over all tables."""
    mats = [np.zeros((len(df), len(features))) for df in dfs]
    categorical = []
    for j, c in enumerate(features):
        if kinds[c] in NUMERIC_KINDS:
            for m, df in zip(mats, dfs, strict=True):
                m[:, j] = numeric_values(df[c], kinds[c])
            categorical.append(False)
            continue
        codes, cats = pd.factorize(pd.concat([df[c] for df in dfs], ignore_index=True).astype(object))
        codes = np.where(codes < 0, np.nan, codes.astype(np.float64))  # missing stays missing
        start = 0
        for m, df in zip(mats, dfs, strict=True):
            m[:, j] = codes[start : start + len(df)]
            start += len(df)
        categorical.append(len(cats) <= 250)  # HGB takes at most max_bins - 1 categories; beyond: ordinal codes
    return mats, categorical


def ml_efficacy(train_real: pd.DataFrame, synth: pd.DataFrame, test_real: pd.DataFrame, target: str,
                kinds: dict[str, str], seed: int = 0, max_iter: int = 100) -> dict[str, Any]:
    """Train-on-synthetic/test-on-real with HistGradientBoosting: macro F1 (categorical target) or R^2, and TRTR."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, r2_score

    if target not in kinds:
        raise ConfigError(f"ml_efficacy: unknown target column {target!r}; columns: {', '.join(kinds)}")
    for df, what in ((train_real, "real training"), (synth, "synthetic"), (test_real, "test")):
        require_columns(df, kinds, what)
    features = [c for c in kinds if c != target]
    classify = kinds[target] == "categorical"
    dfs = [df[df[target].notna()] if not classify else df for df in (train_real, synth, test_real)]
    (x_real, x_synth, x_test), cat_mask = _design(dfs, features, kinds)
    if classify:
        labels = [df[target].astype(object).where(df[target].notna(), "<missing>").astype(str).to_numpy()
                  for df in dfs]
    else:
        labels = [numeric_values(df[target], kinds[target]) for df in dfs]
    y_real, y_synth, y_test = labels

    def fit_score(x: np.ndarray, y: np.ndarray) -> float:
        if classify:
            if len(np.unique(y)) < 2:  # one class: the classifier can only say it
                pred = np.full(len(y_test), y[0], dtype=object)
            else:
                model = HistGradientBoostingClassifier(max_iter=max_iter, categorical_features=cat_mask,
                                                       random_state=seed)
                pred = model.fit(x, y).predict(x_test)
            return float(f1_score(y_test, pred, average="macro"))
        model = HistGradientBoostingRegressor(max_iter=max_iter, categorical_features=cat_mask, random_state=seed)
        return float(r2_score(y_test, model.fit(x, y).predict(x_test)))

    synthetic, real = fit_score(x_synth, y_synth), fit_score(x_real, y_real)
    return {
        "target": target, "task": "classification" if classify else "regression",
        "metric": "macro_f1" if classify else "r2", "synthetic": synthetic, "real": real,
        "ratio": synthetic / real if real > 0 else None,
    }


# --------------------------------------------------------------------------------------------------
# Privacy: distance to closest record


def _encode(dfs: list[pd.DataFrame], ref: pd.DataFrame, kinds: dict[str, str]) -> list[np.ndarray]:
    """Rows as vectors: numbers standardised by `ref` (missing -> 0 plus an indicator), categoricals one-hot."""
    blocks: list[list[np.ndarray]] = [[] for _ in dfs]
    for c, kind in kinds.items():
        if kind in NUMERIC_KINDS:
            xr = numeric_values(ref[c], kind)
            mu, sd = np.nanmean(xr), np.nanstd(xr)
            sd = sd if sd > 0 else 1.0
            xs = [numeric_values(df[c], kind) for df in dfs]
            has_missing = any(np.isnan(x).any() for x in xs)
            for out, x in zip(blocks, xs, strict=True):
                out.append(np.nan_to_num((x - mu) / sd, nan=0.0)[:, None])
                if has_missing:
                    out.append(np.isnan(x)[:, None].astype(np.float64))
        else:
            cats = pd.Index(pd.unique(ref[c].astype(object)))
            for out, df in zip(blocks, dfs, strict=True):
                codes = cats.get_indexer(df[c].astype(object))  # -1 for a value unseen in ref: all zeros
                onehot = np.zeros((len(df), len(cats) + 1))
                onehot[np.arange(len(df)), np.where(codes < 0, len(cats), codes)] = 1.0
                out.append(onehot[:, : len(cats)])
    return [np.concatenate(b, axis=1) for b in blocks]


def nearest_distance(queries: np.ndarray, refs: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row, in chunks of `chunk` queries."""
    ref_sq = (refs**2).sum(1)  # (M,)
    out = np.empty(len(queries))
    for i in range(0, len(queries), chunk):
        q = queries[i : i + chunk]  # (C, F)
        d2 = (q**2).sum(1)[:, None] + ref_sq[None, :] - 2.0 * q @ refs.T  # (C, M)
        out[i : i + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def _row_keys(df: pd.DataFrame, kinds: dict[str, str]) -> np.ndarray:
    """One hash per row over all columns, comparable across tables with the same kinds (numbers as float64)."""
    norm = pd.DataFrame({c: numeric_values(df[c], k) if k in NUMERIC_KINDS else df[c].astype(object).map(repr)
                         for c, k in kinds.items()})
    return pd.util.hash_pandas_object(norm, index=False).to_numpy()


def dcr(train: pd.DataFrame, synth: pd.DataFrame, holdout: pd.DataFrame, kinds: dict[str, str], seed: int = 0,
        max_train: int = 20_000, max_query: int = 5_000) -> dict[str, Any]:
    """Distance to closest record: share of synthetic rows nearer to training than holdout's 5th percentile.

    A generator that does not copy its training rows scores about 0.05 (as the holdout itself does); higher
    means synthetic rows sit unusually close to training rows. Exact copies are counted over all rows.
    """
    for df, what in ((train, "training"), (synth, "synthetic"), (holdout, "holdout")):
        require_columns(df, kinds, what)
    rng = np.random.default_rng(seed)

    def sub(df: pd.DataFrame, n: int) -> pd.DataFrame:
        return df if len(df) <= n else df.iloc[np.sort(rng.choice(len(df), n, replace=False))]

    tr, sy, ho = sub(train, max_train), sub(synth, max_query), sub(holdout, max_query)
    x_tr, x_sy, x_ho = _encode([tr, sy, ho], tr, kinds)
    d_sy, d_ho = nearest_distance(x_sy, x_tr), nearest_distance(x_ho, x_tr)
    threshold = float(np.percentile(d_ho, 5))
    train_keys = _row_keys(train, kinds)
    copies = np.isin(_row_keys(synth, kinds), train_keys)
    holdout_copies = np.isin(_row_keys(holdout, kinds), train_keys)
    return {
        "threshold": threshold,
        "share_closer": float(np.mean(d_sy < threshold)),
        "holdout_share_closer": float(np.mean(d_ho < threshold)),
        "median_dcr_synthetic": float(np.median(d_sy)),
        "median_dcr_holdout": float(np.median(d_ho)),
        "exact_copies": int(copies.sum()),
        "exact_copy_share": float(copies.mean()),
        "exact_copy_rows": [int(i) for i in np.flatnonzero(copies)[:10]],  # positions in `synth`
        "holdout_exact_copies": int(holdout_copies.sum()),
        "holdout_exact_copy_share": float(holdout_copies.mean()),
        "rows_compared": {"train": len(tr), "synthetic": len(sy), "holdout": len(ho)},
    }


# --------------------------------------------------------------------------------------------------
# Warnings for the doctor: mode collapse in a table

MISSING_VALUE_SHARE = 0.01  # a real categorical value this common (share of rows) must appear in the synthetic rows
COLLAPSE_STD_RATIO = 0.01  # a synthetic std under this fraction of the real std: the column collapsed
MAX_NAMED_VALUES = 5  # values named per warning; the rest are counted


def table_warnings(real: pd.DataFrame, synth: pd.DataFrame, kinds: dict[str, str]) -> list[str]:
    """Plain-language warnings: common real categories G never produces, numeric columns collapsed to a point."""
    require_columns(real, kinds, "real")
    require_columns(synth, kinds, "synthetic")
    out = []
    for c, kind in kinds.items():
        if kind == "categorical":
            out += _never_produced(c, real[c], synth[c])
        elif kind in ("continuous", "integer"):
            out += _collapsed(c, numeric_values(real[c], kind), numeric_values(synth[c], kind))
    return out


def _never_produced(name: str, real: pd.Series, synth: pd.Series) -> list[str]:
    """A warning naming the values of `real` (at least MISSING_VALUE_SHARE of its rows) absent from `synth`."""
    if len(real) == 0:
        return []
    shares = real.value_counts(dropna=True, sort=True) / len(real)  # most frequent first
    common = shares[shares >= MISSING_VALUE_SHARE]
    absent = common[~common.index.isin(synth.dropna().unique())]
    if absent.empty:
        return []
    named = [f"{_show_value(v)} ({share:.1%}{' of real rows' if i == 0 else ''})"
             for i, (v, share) in enumerate(absent.iloc[:MAX_NAMED_VALUES].items())]
    more = f" and {len(absent) - MAX_NAMED_VALUES} more" if len(absent) > MAX_NAMED_VALUES else ""
    return [f"column {name!r}: the synthetic rows never contain {', '.join(named)}{more}"]


def _collapsed(name: str, real: np.ndarray, synth: np.ndarray) -> list[str]:
    """A warning when the synthetic values of a numeric column sit at one point (or are all missing)."""
    r, s = real[~np.isnan(real)], synth[~np.isnan(synth)]
    if len(r) < 2 or np.std(r) == 0:
        return []  # the real column has no spread to lose
    if len(s) == 0:
        return [f"column {name!r}: every synthetic value is missing"]
    if np.all(s == s[0]):
        return [f"column {name!r}: the synthetic values collapsed to the single value {s[0]:.6g}"]
    if np.std(s) < COLLAPSE_STD_RATIO * np.std(r):
        return [f"column {name!r}: the synthetic values collapsed to a point near {np.median(s):.6g} "
                f"(std {np.std(s):.3g}, under {COLLAPSE_STD_RATIO:.0%} of the real std {np.std(r):.3g})"]
    return []


def _show_value(v: Any) -> str:
    """A category value as the user wrote it: text quoted, numbers and booleans plain."""
    v = v.item() if isinstance(v, np.generic) else v
    return repr(v) if isinstance(v, str) else str(v)
