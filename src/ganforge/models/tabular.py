"""CTGAN's networks and training-by-sampling (Xu et al. 2019, the `ctgan` package): forward passes and draws only.

- TableGenerator: residual MLP (Linear + BatchNorm + ReLU, each block's output concatenated to its input),
  then per span of the TableTransform layout a tanh (scalars) or a Gumbel-softmax (one-hots, tau 0.2).
- TableDiscriminator: the "pac" critic: `pac` rows (with their condition vectors) are scored together.
- ConditionSampler: draws the condition vector (a column, then one of its values with log-frequency) and the
  index of a real row holding that value, so D compares like with like and G learns rare categories.

Every random draw takes the run's `torch.Generator`; nothing here touches torch's global RNG.
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

Tensor = torch.Tensor


def _gumbel(shape: torch.Size, like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard Gumbel noise -log(-log U), drawn from `generator` (F.gumbel_softmax would use the global RNG)."""
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    e = (-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10)  # Exponential(1), never 0
    return -torch.log(e)


class Residual(nn.Module):
    """CTGAN's block: x -> cat(relu(bn(fc(x))), x), so width grows by `out` at each block."""

    def __init__(self, i: int, o: int):
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x: Tensor) -> Tensor:
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
            if generator is None:
                raise ValueError("TableGenerator needs the run's torch.Generator for its Gumbel-softmax draws")
            y = x + _gumbel(x.shape, x, generator)
            if hard:
                parts.append(F.one_hot(y.argmax(dim=1), s.width).to(x.dtype))
            else:
                parts.append(torch.softmax(y / self.tau, dim=1))
        return torch.cat(parts, dim=1)  # (B, D)

    def forward(self, z: Tensor, cond: Tensor, generator: torch.Generator | None = None,
                hard: bool | None = None) -> Tensor:
        """Rows (B, D); hard one-hots when `hard` (default: not self.training), soft Gumbel-softmax otherwise."""
        return self.activate(self.raw(z, cond), generator, (not self.training) if hard is None else hard)


class TableDiscriminator(nn.Module):
    """CTGAN's pac critic: rows (B, data_dim) + cond (B, cond_dim) -> logits (B // pac,), pac rows per score."""

    def __init__(self, data_dim: int, cond_dim: int, pac: int = 10, hidden: Sequence[int] = (256, 256),
                 dropout: float = 0.5):
        super().__init__()
        if pac < 1:
            raise ConfigError(f"pac must be >= 1, got {pac}")
        self.pac, self.dropout = pac, dropout
        self.in_dim = (data_dim + cond_dim) * pac
        self.layers = nn.ModuleList()
        width = self.in_dim
        for h in hidden:
            self.layers.append(nn.Linear(width, h))
            width = h
        self.out = nn.Linear(width, 1)

    def forward(self, x: Tensor, cond: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Logits (B // pac,); in training mode dropout masks are drawn from `generator` (required then)."""
        if x.shape[0] % self.pac:
            raise ValueError(f"TableDiscriminator: batch {x.shape[0]} is not a multiple of pac={self.pac}")
        drop = self.training and self.dropout > 0
        if drop and generator is None:
            raise ValueError("TableDiscriminator in training mode needs the run's torch.Generator for dropout")
        h = torch.cat([x, cond], dim=1).reshape(-1, self.in_dim)  # (B // pac, pac * (data_dim + cond_dim))
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            if drop:
                keep = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype) >= self.dropout
                h = h * keep / (1.0 - self.dropout)
        return self.out(h).squeeze(1)  # (B // pac,)


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
    """

    def __init__(self, transform: TableTransform, train_matrix: np.ndarray, log_frequency: bool = True,
                 modes: bool = False):
        roles = ("category", "mode", "missing") if modes else ("category",)
        self.transform = transform
        self.spans = [s for s in transform.spans if s.kind == "softmax" and s.role in roles]
        self.n_rows = int(train_matrix.shape[0])
        widths = np.array([s.width for s in self.spans], dtype=np.int64)
        self.cond_dim = int(widths.sum())
        self.offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)  # each span's first cond slot
        # value of each row in each conditioning span: (N, S)
        values = np.stack([train_matrix[:, s.start : s.start + s.width].argmax(axis=1) for s in self.spans], axis=1) \
            if self.spans else np.zeros((self.n_rows, 0), dtype=np.int64)
        self.values = torch.from_numpy(values.astype(np.int64))
        slot = values + self.offsets  # (N, S) global cond slot of each row's value
        counts = np.bincount(slot.reshape(-1), minlength=self.cond_dim)  # rows per (span, value)
        # rows grouped by slot: rows_by_slot[first[c] : first[c] + counts[c]] hold value c
        order = np.argsort(slot.T.reshape(-1), kind="stable")  # over (S, N) flattened: row = index % N
        self.rows_by_slot = torch.from_numpy(order % max(self.n_rows, 1))
        self.first = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64))
        self.counts = torch.from_numpy(counts.astype(np.int64))
        freq = np.log(counts + 1.0) if log_frequency else counts.astype(np.float64)
        freq[counts == 0] = 0.0  # never condition on a value no training row has
        max_w = int(widths.max()) if len(widths) else 0
        cdf = np.ones((len(self.spans), max_w))  # (S, max_w) cumulative value probabilities per span
        for i, s in enumerate(self.spans):
            p = freq[self.offsets[i] : self.offsets[i] + s.width]
            cdf[i, : s.width] = np.cumsum(p / p.sum())
            cdf[i, np.flatnonzero(p)[-1] :] = 1.0  # exact 1 from the last possible value on: u < 1 always lands
        self.cdf = torch.from_numpy(cdf)

    def sample(self, batch: int, generator: torch.Generator) -> CondBatch:
        """A span uniformly, a value by (log-)frequency, and a real row holding it, for each of `batch` rows."""
        n_spans = len(self.spans)
        if n_spans == 0:
            idx = torch.randint(self.n_rows, (batch,), generator=generator)
            empty = torch.zeros(batch, 0)
            return CondBatch(empty, empty, torch.zeros(batch, dtype=torch.long), torch.zeros(batch, dtype=torch.long),
                             idx)
        span = torch.randint(n_spans, (batch,), generator=generator)
        u = torch.rand(batch, 1, generator=generator, dtype=torch.float64)
        value = (self.cdf[span] < u).sum(dim=1)  # inverse CDF: (B,)
        slot = torch.from_numpy(self.offsets)[span] + value
        pick = (torch.rand(batch, generator=generator, dtype=torch.float64) * self.counts[slot]).long()
        real_idx = self.rows_by_slot[self.first[slot] + torch.minimum(pick, self.counts[slot] - 1)]  # (B,)
        return CondBatch(self._one_hot(slot), F.one_hot(span, n_spans).float(), span, value, real_idx)

    def sample_original(self, batch: int, generator: torch.Generator) -> Tensor:
        """Condition vectors for generation (B, cond_dim): a random span at a random training row's value."""
        if not self.spans:
            return torch.zeros(batch, 0)
        span = torch.randint(len(self.spans), (batch,), generator=generator)
        row = torch.randint(self.n_rows, (batch,), generator=generator)
        return self._one_hot(torch.from_numpy(self.offsets)[span] + self.values[row, span])

    def sample_cond_for(self, column: str, value: Any, batch: int = 1) -> Tensor:
        """The fixed condition vector (batch, cond_dim) for `column == value` (--where column=value)."""
        index = self.transform.category_index(column, value)  # ConfigError for unknown column/value
        i = next((k for k, s in enumerate(self.spans) if s.column == column and s.role == "category"), None)
        if i is None:
            raise ConfigError(f"column {column!r} is not a conditioning column")
        slot = int(self.offsets[i]) + index
        if int(self.counts[slot]) == 0:
            raise ConfigError(f"no training row has {column}={value!r}; cannot condition on it")
        return self._one_hot(torch.full((batch,), slot, dtype=torch.long))

    def _one_hot(self, slot: Tensor) -> Tensor:
        return F.one_hot(slot, self.cond_dim).float()  # (B, cond_dim)

    def cond_loss(self, fake_logits: Tensor, cond: Tensor, mask: Tensor) -> Tensor:
        """CTGAN's G penalty: cross-entropy of G's logits (B, D) on the conditioned span, summed / B."""
        if not self.spans:
            return fake_logits.new_zeros(())
        losses = []
        for i, s in enumerate(self.spans):
            o = int(self.offsets[i])
            target = cond[:, o : o + s.width].argmax(dim=1)  # (B,)
            losses.append(F.cross_entropy(fake_logits[:, s.start : s.start + s.width], target, reduction="none"))
        return (torch.stack(losses, dim=1) * mask).sum() / fake_logits.shape[0]  # (B, S) masked
