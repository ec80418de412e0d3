"""CTGAN's networks and training-by-sampling (Xu et al. 2019, the `ctgan` package): forward passes and draws only.

- TableGenerator: residual MLP (Linear + BatchNorm + ReLU, each block's output concatenated to its input),
  then per span of the TableTransform layout a tanh (scalars) or a Gumbel-softmax (one-hots, tau 0.2).
- TableDiscriminator: the "pac" critic: `pac` rows (with their condition vectors) are scored together.
  Both follow the interface of every ganforge network (models/__init__.py) with the condition vector as
  the second argument: G(z, cond, ...) -> rows, D(x, cond, ...) -> (logits, None).
- ConditionSampler: draws the condition vector (a column, then one of its values with log-frequency) and the
  index of a real row holding that value, so D compares like with like and G learns rare categories.

Every random draw takes a passed `torch.Generator`; without one (the training loop), Gumbel noise and dropout
come from torch's global stream, which the loop swaps for the run's own during a step (rng.RunRandom.active).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import ConfigError
from ganforge.data.tables import Span, TableTransform
from ganforge.models.layers import gumbel_noise

Tensor = torch.Tensor


class Residual(nn.Module):
    """CTGAN's block: x -> cat(relu(bn(fc(x))), x), so width grows by `out` at each block."""

    def __init__(self, i: int, o: int):
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x: Tensor) -> Tensor:
        """(B, i) -> (B, o + i)."""
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)  # (B, o + i)


class TableGenerator(nn.Module):
    """(z (B, z_dim), cond (B, cond_dim)) -> rows (B, D) in TableTransform space, one head per span."""

    def __init__(self, z_dim: int, cond_dim: int, spans: Sequence[Span], hidden: Sequence[int] = (256, 256),
                 tau: float = 0.2):
        super().__init__()
        self.z_dim, self.cond_dim, self.tau = z_dim, cond_dim, tau
        self.spans = list(spans)
        self.data_dim = sum(s.width for s in self.spans)
        blocks, width = [], z_dim + cond_dim
        for h in hidden:
            blocks.append(Residual(width, h))
            width += h
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, self.data_dim)
        self.last_raw: Tensor | None = None  # forward's pre-activation outputs, for the loop's cond_loss

    def raw(self, z: Tensor, cond: Tensor) -> Tensor:
        """Pre-activation outputs (B, D): the logits that cond_loss scores."""
        return self.out(self.body(torch.cat([z, cond], dim=1)))

    def activate(self, raw: Tensor, generator: torch.Generator | None, hard: bool) -> Tensor:
        """tanh on scalar spans; on one-hot spans Gumbel-softmax (soft) or its argmax one-hot (hard).

        The hard one-hot is argmax(logits + Gumbel noise), a draw from softmax(logits) as CTGAN's sample()
        makes; a plain argmax of the logits would never emit a category that is not the most likely one.
        """
        parts = []
        for s in self.spans:
            x = raw[:, s.start : s.start + s.width]
            if s.kind == "tanh":
                parts.append(torch.tanh(x))
                continue
            y = x + gumbel_noise(x.shape, x, generator)
            if hard:
                parts.append(F.one_hot(y.argmax(dim=1), s.width).to(x.dtype))
            else:
                parts.append(torch.softmax(y / self.tau, dim=1))
        return torch.cat(parts, dim=1)  # (B, D)

    def forward(self, z: Tensor, cond: Tensor | None = None, generator: torch.Generator | None = None,
                hard: bool | None = None) -> Tensor:
        """Rows (B, D); hard one-hots when `hard` (default: not self.training), soft Gumbel-softmax otherwise.

        The pre-activation outputs are kept in `last_raw` (the loop's cond_loss reads them after G's pass).
        """
        cond = cond if cond is not None else z.new_zeros(z.shape[0], self.cond_dim)
        raw = self.raw(z, cond)
        self.last_raw = raw
        return self.activate(raw, generator, (not self.training) if hard is None else hard)


class TableDiscriminator(nn.Module):
    """CTGAN's pac critic: rows (B, data_dim) + cond (B, cond_dim) -> (logits (B // pac,), None), pac rows per score.

    Rows may come packed already (B // pac, pac * data_dim), as the loop's PacGAN `pack` hands them over; either
    way a score reads [x_1 .. x_pac, c_1 .. c_pac].
    """

    def __init__(self, data_dim: int, cond_dim: int, pac: int = 10, hidden: Sequence[int] = (256, 256),
                 dropout: float = 0.5):
        super().__init__()
        if pac < 1:
            raise ConfigError(f"pac must be >= 1, got {pac}")
        self.pac, self.dropout, self.data_dim, self.cond_dim = pac, dropout, data_dim, cond_dim
        self.in_dim = (data_dim + cond_dim) * pac
        self.layers = nn.ModuleList()
        width = self.in_dim
        for h in hidden:
            self.layers.append(nn.Linear(width, h))
            width = h
        self.out = nn.Linear(width, 1)

    def forward(self, x: Tensor, cond: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, None]:
        """(logits (B // pac,), None: no class head); in training mode dropout masks come from `generator`
        (None: torch's global stream)."""
        packed = x.shape[1] == self.pac * self.data_dim and self.pac > 1
        rows = x.shape[0] * self.pac if packed else x.shape[0]
        if rows % self.pac:
            raise ValueError(f"TableDiscriminator: batch {rows} is not a multiple of pac={self.pac}")
        cond = cond if cond is not None else x.new_zeros(rows, self.cond_dim)
        groups = rows // self.pac
        h = torch.cat([x.reshape(groups, -1), cond.reshape(groups, -1)], dim=1)  # (B // pac, pac * (D + C))
        drop = self.training and self.dropout > 0
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            if drop and generator is None:
                h = F.dropout(h, self.dropout, training=True)
            elif drop:
                keep = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype) >= self.dropout
                h = h * keep / (1.0 - self.dropout)
        return self.out(h).squeeze(1), None  # (B // pac,)


class CondBatch(NamedTuple):
    """One draw of training-by-sampling for a batch of B rows."""

    cond: Tensor  # (B, cond_dim) float one-hot of the chosen value in the chosen span's block
    mask: Tensor  # (B, n_spans) float one-hot of the chosen span
    span: Tensor  # (B,) long: which conditioning span
    value: Tensor  # (B,) long: which value within it
    real_idx: Tensor  # (B,) long: a training row holding that value (uniform among such rows)


class ConditionSampler:
    """CTGAN's training-by-sampling over the categorical spans (and, with modes=True, the GMM mode spans).

    CTGAN itself conditions on discrete columns only; modes=True also conditions on numeric columns' modes
    (and missing indicators). Row lists per (span, value) are precomputed once as one sorted index array.
    Draws happen on the sampler's device (`to`), from a generator on that device.
    """

    def __init__(self, transform: TableTransform, train_matrix: np.ndarray, log_frequency: bool = True,
                 modes: bool = False):
        roles = ("category", "mode", "missing") if modes else ("category",)
        self.transform = transform
        self.spans = [s for s in transform.spans if s.kind == "softmax" and s.role in roles]
        self.n_rows = int(train_matrix.shape[0])
        widths = np.array([s.width for s in self.spans], dtype=np.int64)
        self.cond_dim = int(widths.sum())
        offsets = np.concatenate([[0], np.cumsum(widths)])[: len(widths)].astype(np.int64)  # span's first cond slot
        self._starts = [int(o) for o in offsets]
        values = np.zeros((self.n_rows, len(self.spans)), dtype=np.int64)  # (N, S) each row's value per span
        for k, sp in enumerate(self.spans):
            values[:, k] = np.asarray(train_matrix[:, sp.start : sp.start + sp.width]).argmax(axis=1)
        slot = values + offsets  # (N, S) global cond slot of each row's value
        counts = np.bincount(slot.reshape(-1), minlength=self.cond_dim)  # rows per (span, value)
        # rows grouped by slot: rows_by_slot[first[c] : first[c] + counts[c]] are the rows holding value c
        order = np.argsort(slot.T.reshape(-1), kind="stable")  # over (S, N) flattened, so row = index % N
        freq = np.log(counts + 1.0) if log_frequency else counts.astype(np.float64)
        freq[counts == 0] = 0.0  # never condition on a value no training row has
        cdf = np.ones((len(self.spans), int(widths.max(initial=0))))  # (S, max_w) cumulative value probabilities
        for k, sp in enumerate(self.spans):
            p = freq[offsets[k] : offsets[k] + sp.width]
            cdf[k, : sp.width] = np.cumsum(p / p.sum())
            cdf[k, np.flatnonzero(p)[-1] :] = 1.0  # exactly 1 from the last possible value on: u < 1 lands there
        self._t = {
            "offsets": torch.from_numpy(offsets), "values": torch.from_numpy(values),
            "rows_by_slot": torch.from_numpy(order % max(self.n_rows, 1)),
            "first": torch.from_numpy(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)),
            "counts": torch.from_numpy(counts.astype(np.int64)), "cdf": torch.from_numpy(cdf),
        }
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> ConditionSampler:
        """Move the lookup tables to `device` (draws then need a generator on that device); returns self."""
        self.device = torch.device(device)
        self._t = {k: v.to(self.device) for k, v in self._t.items()}
        return self

    def sample(self, batch: int, generator: torch.Generator) -> CondBatch:
        """A span uniformly, a value by (log-)frequency, and a real row holding it, for each of `batch` rows."""
        t, dev, n_spans = self._t, self.device, len(self.spans)
        if n_spans == 0:
            idx = torch.randint(self.n_rows, (batch,), generator=generator, device=dev)
            none, empty = torch.zeros(batch, dtype=torch.long, device=dev), torch.zeros(batch, 0, device=dev)
            return CondBatch(empty, empty, none, none, idx)
        span = torch.randint(n_spans, (batch,), generator=generator, device=dev)
        u = torch.rand(batch, 1, generator=generator, dtype=torch.float64, device=dev)
        value = (t["cdf"][span] < u).sum(dim=1)  # inverse CDF: (B,)
        slot = t["offsets"][span] + value
        count = t["counts"][slot]
        pick = (torch.rand(batch, generator=generator, dtype=torch.float64, device=dev) * count).long()
        real_idx = t["rows_by_slot"][t["first"][slot] + torch.minimum(pick, count - 1)]  # (B,)
        return CondBatch(self._one_hot(slot), F.one_hot(span, n_spans).float(), span, value, real_idx)

    def sample_original(self, batch: int, generator: torch.Generator) -> Tensor:
        """Condition vectors for generation (B, cond_dim): a random span at a random training row's value."""
        if not self.spans:
            return torch.zeros(batch, 0, device=self.device)
        span = torch.randint(len(self.spans), (batch,), generator=generator, device=self.device)
        row = torch.randint(self.n_rows, (batch,), generator=generator, device=self.device)
        return self._one_hot(self._t["offsets"][span] + self._t["values"][row, span])

    def value_counts(self) -> list[list[int]]:
        """Training rows holding each value of each conditioning span: one list per span (JSON-ready)."""
        counts = self._t["counts"].tolist()
        return [counts[o : o + s.width] for o, s in zip(self._starts, self.spans, strict=True)]

    def sample_cond_for(self, column: str, value: Any, batch: int = 1) -> Tensor:
        """The fixed condition vector (batch, cond_dim) for `column == value` (--where column=value)."""
        index = self.transform.category_index(column, value)  # ConfigError for unknown column/value
        k = next((k for k, s in enumerate(self.spans) if s.column == column and s.role == "category"), None)
        if k is None:
            raise ConfigError(f"column {column!r} is not a conditioning column")
        slot = self._starts[k] + index
        if int(self._t["counts"][slot]) == 0:
            raise ConfigError(f"no training row has {column}={value!r}; cannot condition on it")
        return self._one_hot(torch.full((batch,), slot, dtype=torch.long, device=self.device))

    def _one_hot(self, slot: Tensor) -> Tensor:
        return F.one_hot(slot, self.cond_dim).float()  # (B, cond_dim)

    def cond_loss(self, fake_logits: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """CTGAN's G penalty: cross-entropy of G's logits (B, D) on the conditioned span, summed / B.

        `mask` (B, n_spans) marks each row's conditioned span; None reads it off `cond`'s blocks.
        """
        if not self.spans:
            return fake_logits.new_zeros(())
        if mask is None:
            mask = torch.stack([cond[:, o : o + s.width].sum(1) for o, s in zip(self._starts, self.spans, strict=True)],
                               dim=1)  # (B, S)
        losses = []
        for i, s in enumerate(self.spans):
            o = self._starts[i]
            target = cond[:, o : o + s.width].argmax(dim=1)  # (B,)
            losses.append(F.cross_entropy(fake_logits[:, s.start : s.start + s.width], target, reduction="none"))
        return (torch.stack(losses, dim=1) * mask).sum() / fake_logits.shape[0]  # (B, S) masked
