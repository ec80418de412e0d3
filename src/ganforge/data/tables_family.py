"""The tables family: the user's CSV/TSV/Parquet tables (and diamonds), learned as CTGAN learns them.

A table becomes CTGAN's mode-specific encoding (data/tables.py: `TableTransform`, saved as JSON in the run's
`family_state`); G is CTGAN's residual net with tanh and Gumbel-softmax heads, D its pac critic
(models/tabular.py). Training-by-sampling conditions G on one categorical value per row, drawn with
log-frequency, and D sees real rows holding the same values (`TableBatches`); G's loss adds the cross-entropy
that makes it honour its condition. Samples decode to a DataFrame with the input's columns, dtypes and
categories; `where={column: value}` samples rows with a fixed categorical value.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ganforge.config import ConfigError
from ganforge.data import tables as T
from ganforge.data.base import Dataset
from ganforge.data.family import Family, _bad_suffix

PICTURE_ROWS = 2000  # rows of the fixed noise pictured (histograms need more than an 8x8 grid)
WHERE_MAX_TRIES = 50  # --where by rejection: give up after drawing this many batches of n rows


class TableConditions:
    """Condition vectors for G at sampling time: CTGAN's `sample_original_condvec` (a categorical column
    uniformly, then a value with its training frequency) or one fixed value; built from saved JSON counts."""

    def __init__(self, transform: T.TableTransform, counts: list[list[int]]):
        self.transform = transform
        self.spans = [s for s in transform.spans if s.kind == "softmax" and s.role == "category"]
        self.counts = [np.asarray(c, dtype=np.float64) for c in counts]
        if len(self.counts) != len(self.spans):
            raise ConfigError("the run's table state does not match its transform (condition counts)")
        self.starts = np.concatenate([[0], np.cumsum([s.width for s in self.spans])]).astype(np.int64)
        self.dim = int(self.starts[-1])

    def original(self, n: int, gen: torch.Generator | None) -> torch.Tensor:
        """(n, dim) one-hots: a random conditioning column, at a value drawn with its training frequency."""
        if not self.spans:
            return torch.zeros(n, 0)
        span = torch.randint(len(self.spans), (n,), generator=gen)
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        slot = torch.empty(n, dtype=torch.long)
        for k, c in enumerate(self.counts):
            rows = span == k
            cdf = torch.from_numpy(np.cumsum(c) / c.sum())
            value = torch.searchsorted(cdf, u[rows], right=True).clamp_max(len(c) - 1)
            slot[rows] = int(self.starts[k]) + value
        return F.one_hot(slot, self.dim).float()

    def column(self, name: str) -> int | None:
        """The index of `name` among the conditioning columns, or None."""
        return next((k for k, s in enumerate(self.spans) if s.column == name), None)

    def fixed(self, column: str, value: Any, n: int) -> torch.Tensor:
        """(n, dim) one-hots of `column == value` (a conditioning column)."""
        k = self.column(column)
        slot = int(self.starts[k]) + self.transform.category_index(column, value)
        return F.one_hot(torch.full((n,), slot, dtype=torch.long), self.dim).float()


class TableBatches:
    """Real rows matched to condition vectors (CTGAN's training-by-sampling), drawn from the run's streams."""

    def __init__(self, data: Dataset, streams, batch_size: int):
        self.data, self.rng, self.batch_size = data, streams, batch_size
        self.cond = data.extra["cond"]  # models.tabular.ConditionSampler

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the global batch: (rows (B, D), their condition vectors (B, cond_dim))."""
        cb = self.cond.sample(self.batch_size, self.rng["labels"])
        idx, cond = self.rng.slice(cb.real_idx), self.rng.slice(cb.cond)
        return self.data.x[idx], cond

    def close(self) -> None: ...


class Tables(Family):
    name = "tables"
    arches = ("ctgan",)
    sample_suffixes = (".csv", ".tsv", ".parquet")
    walkable = False
    decoded = True
    indexed = False  # rows are drawn with replacement to match condition vectors: a batch may exceed the table
    sample_options = ("where",)

    # ---- loading --------------------------------------------------------------------------------
    def load(self, df: pd.DataFrame, name: str, cfg, seed: int, source: dict, state: dict | None) -> Dataset:
        """A Dataset of the table `df` (all rows; a holdout split off here), encoded by a fitted or saved transform."""
        from ganforge.models.tabular import ConditionSampler

        T.check_table(df, name)
        unknown = [c for c in cfg.columns if c not in df.columns]
        if unknown:
            raise ConfigError(f"data.columns: no column named {unknown[0]!r} in {name}; its columns are "
                              f"{', '.join(map(str, df.columns))}")
        if cfg.target and cfg.target not in df.columns:
            raise ConfigError(f"data.target: no column named {cfg.target!r} in {name}; its columns are "
                              f"{', '.join(map(str, df.columns))}")
        if cfg.holdout > 0:
            train, hold = T.holdout_split(df, cfg.holdout, seed)
        else:
            train, hold = df.reset_index(drop=True), df.iloc[:0]
        if state and state.get("transform"):
            transform = T.TableTransform.from_json(state["transform"])
            if transform.columns != [str(c) for c in df.columns]:
                raise ConfigError(f"{name}: the table's columns changed since the run learned its transform")
        else:
            kinds = T.infer_kinds(train, dict(cfg.columns))
            transform = T.TableTransform().fit(train, kinds, seed=seed)
        kinds = transform.kinds
        matrix = transform.transform(train, seed=seed)  # (N, D)
        cond = ConditionSampler(transform, matrix)
        meta = {"transform": transform.to_json(), "cond_counts": cond.value_counts(), "target": cfg.target}
        report = [f"table {name}: {len(df):,} rows x {len(df.columns)} columns ("
                  + ", ".join(f"{c} {k}" for c, k in kinds.items())
                  + f"); {len(train):,} train, {len(hold):,} holdout; "
                  f"encoded width {transform.dim}, conditioning on {len(cond.spans)} categorical columns"]
        return Dataset(name, torch.from_numpy(matrix), family=self, source=source, report=report, meta=meta,
                       extra={"train": train, "holdout": hold, "kinds": kinds, "transform": transform, "cond": cond})

    def check_config(self, cfg, data: Dataset) -> None:
        super().check_config(cfg, data)
        if cfg.model.conditional != "none":
            raise ConfigError("model.conditional: tables condition G on their categorical columns themselves "
                              "(CTGAN's training-by-sampling); set model.conditional = 'none'")
        for net in ("g", "d"):
            if getattr(cfg.model, net).spectral_norm or getattr(cfg.model, net).minibatch != "none":
                raise ConfigError(f"model.{net}: spectral_norm and minibatch layers are not built into ctgan nets")

    # ---- networks and the step ------------------------------------------------------------------
    def generator(self, cfg, shape, num_classes, state):
        from ganforge.models.tabular import TableGenerator

        transform = T.TableTransform.from_json(state["transform"])
        cond_dim = sum(len(c) for c in state["cond_counts"])
        return TableGenerator(cfg.z_dim, cond_dim, transform.spans, hidden=tuple(cfg.g.hidden), tau=cfg.tau)

    def check_state(self, state, shape, weights) -> None:
        dim = T.TableTransform.from_json(state["transform"]).dim
        out = weights.get("out.weight")
        cond = sum(len(c) for c in state["cond_counts"])
        first = weights.get("body.0.fc.weight")
        if out is None or tuple(shape) != (dim,) or out.shape[0] != dim or first is None or first.shape[1] < cond:
            raise ValueError(f"the saved transform (width {dim}) does not match the generator's weights")

    def discriminator(self, cfg, shape, num_classes, state):
        from ganforge.models.tabular import TableDiscriminator

        cond_dim = sum(len(c) for c in state["cond_counts"])
        return TableDiscriminator(shape[0], cond_dim, pac=cfg.pack, hidden=tuple(cfg.d.hidden), dropout=cfg.d.dropout)

    def batches(self, data, sampler, streams, cfg, device):
        data.extra["cond"].to(device)
        return TableBatches(data, streams, cfg.train.batch_size)

    def fake_labels(self, run, n: int) -> torch.Tensor:
        """Condition vectors (B, cond_dim) of this rank, drawn as the real rows' are."""
        return run.rng.slice(run.data.extra["cond"].sample(n, run.rng["labels"]).cond)

    def fixed_labels(self, data, n, cfg, device):
        gen = torch.Generator().manual_seed(cfg.train.seed + 2)
        return self._conditions(data.meta).original(n, gen).to(device)

    def g_loss(self, run, y):
        """CTGAN's cross-entropy of G's pre-activation outputs on each row's conditioned span."""
        raw = run.G.last_raw
        return run.data.extra["cond"].cond_loss(raw.float(), y) if raw is not None and y.shape[1] else None

    def picture_count(self, cfg) -> int:
        return PICTURE_ROWS

    # ---- samples ----------------------------------------------------------------------------------
    @staticmethod
    def _conditions(state: dict) -> TableConditions:
        return TableConditions(T.TableTransform.from_json(state["transform"]), state["cond_counts"])

    def generate(self, s, z, y, gen, batch, where: dict | None = None, **options) -> pd.DataFrame:
        """A DataFrame of len(z) rows; `where` {column: value} fixes categorical values (conditioning on a
        conditioning column, then rejection for anything G still got wrong); `s.acceptance` says how many
        rows drawn were kept."""
        if y is not None:
            raise ValueError("labels given, but a table generator is conditioned by `where`, not labels")
        conds = self._conditions(s.family_state)
        transform, where = conds.transform, where or {}
        # the category of each fixed column (ConfigError: unknown column, not categorical, unknown value)
        index = {column: transform.category_index(column, value) for column, value in where.items()}
        for column, i in index.items():
            k = conds.column(column)
            if k is not None and conds.counts[k][i] == 0:
                raise ConfigError(f"--where: no training row has {column}={where[column]!r}; G cannot be asked for it")
        n, kept, drawn, tries = len(z), [], 0, 0
        fixed = next((c for c in where if conds.column(c) is not None), None)
        while sum(len(d) for d in kept) < n:
            if tries == WHERE_MAX_TRIES:
                raise ConfigError(f"--where: after {drawn:,} rows drawn only {sum(len(d) for d in kept):,} matched "
                                  f"{_show_where(where)}; G rarely makes such rows")
            zz = z if tries == 0 else torch.randn(z.shape, generator=gen)
            cond = conds.fixed(fixed, where[fixed], n) if fixed else conds.original(n, gen)
            df = transform.inverse(self._rows(s.G, zz, cond, gen, batch).numpy())
            for column, i in index.items():
                df = df[_matches(df[column], i, transform, column)]
            drawn, tries = drawn + n, tries + 1
            kept.append(df)
        s.acceptance = sum(len(d) for d in kept) / drawn
        return pd.concat(kept, ignore_index=True).iloc[:n]

    @staticmethod
    @torch.no_grad()
    def _rows(G, z: torch.Tensor, cond: torch.Tensor, gen, batch: int) -> torch.Tensor:
        """G's hard rows (n, D) in eval mode, Gumbel draws from `gen`."""
        was = G.training
        G.eval()
        device = next(G.parameters()).device
        out = torch.cat([G(zc.to(device), cc.to(device), gen if device.type == "cpu" else None, True).cpu()
                         for zc, cc in zip(z.split(batch), cond.split(batch), strict=True)])
        G.train(was)
        return out.float()

    def picture(self, samples, path: Path, data, cfg, title: str, nrow: int = 0) -> Path:
        from ganforge.viz.tables import save_table_picture

        synth = data.extra["transform"].inverse(samples.float().cpu().numpy())
        real = data.extra["train"]
        real = real.sample(5000, random_state=0) if len(real) > 5000 else real
        return save_table_picture(real, synth, data.extra["kinds"], path, title)

    def watch(self, samples, data) -> tuple[dict, list[str]]:
        from ganforge.metrics.tables import table_warnings

        synth = data.extra["transform"].inverse(samples.float().cpu().numpy())
        real = data.extra["train"]
        warnings = table_warnings(real, synth, data.extra["kinds"])
        return {"table_warnings": len(warnings)}, warnings

    def real_for_eval(self, data, n: int, seed: int) -> pd.DataFrame:
        """The training split (the quality report's reference, as SDMetrics compares with the data fitted)."""
        return data.extra["train"]

    def default_metrics(self, inp) -> list[str]:
        has_holdout = inp.dataset is not None and len(inp.dataset.extra["holdout"]) > 0
        target = inp.dataset is not None and inp.dataset.meta.get("target")
        return ["quality"] + (["ml_efficacy"] if has_holdout and target else []) + (["dcr"] if has_holdout else [])

    def write_samples(self, samples, out: Path, data_cfg=None, labels=None, nrow: int = 0, names=None) -> str:
        if not isinstance(samples, pd.DataFrame):
            raise TypeError("tables write DataFrames")
        suffix = out.suffix.lower()
        if suffix not in self.sample_suffixes:
            raise _bad_suffix(self, out)
        from ganforge import fsio

        if suffix == ".parquet":
            import io

            buf = io.BytesIO()
            try:
                samples.to_parquet(buf, index=False)
            except ImportError:
                raise ConfigError("--out: writing Parquet needs pyarrow (pip install pyarrow); or write .csv") from None
            fsio.atomic_write_bytes(out, buf.getvalue())  # parent folders are made by the atomic write
        else:
            fsio.atomic_write_text(out, samples.to_csv(index=False, sep="," if suffix == ".csv" else "\t"))
        return f"{len(samples):,} rows to {out}"


def _matches(col: pd.Series, index: int, transform: T.TableTransform, column: str) -> pd.Series:
    """Rows whose value is the category at `index` of `column` (missing when that category is 'missing')."""
    spec = transform.column_spec(column)
    cats = spec["categories"]
    if index == len(cats):
        return col.isna()
    want = cats[index]
    return col.astype(object).map(lambda v: v is not None and v == v and (v == want or str(v) == str(want)))


def _show_where(where: dict) -> str:
    return " and ".join(f"{k}={v}" for k, v in where.items())


def parse_where(items: list[str]) -> dict[str, str]:
    """--where column=value (repeatable) -> {column: value}; a one-line error for a malformed item."""
    out = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise ConfigError(f"--where expects column=value, got {item!r}")
        out[column.strip()] = value.strip()
    return out


def load_table_path(path: str, cfg, seed: int, state: dict | None) -> Dataset:
    """A CSV/TSV/Parquet file as a tables Dataset, its bytes' sha256 recorded for eval and resume."""
    df = T.read_table(path, dict(cfg.columns))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return TABLES.load(df, Path(path).name, cfg, seed, {"path": path, "sha256": digest, "n": len(df)}, state)


def load_table_frame(df: pd.DataFrame, name: str, cfg, seed: int, state: dict | None) -> Dataset:
    """A built-in table (diamonds) as a tables Dataset."""
    return TABLES.load(df, name, cfg, seed, {}, state)


TABLES = Tables()
