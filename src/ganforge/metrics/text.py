"""Text sample metrics against a held-out split: copies and novelty, n-gram JSD, lengths, and n-gram LM NLLs.

The two likelihood views follow Caccia et al. 2018 ("Language GANs Falling Short"): forward NLL of the
samples under an LM fit on the training lines (quality: do samples look like the language?) and reverse
NLL of the held-out lines under an LM fit on the samples (coverage: could the samples have produced the
real data?). The LM is a character n-gram model with interpolated modified Kneser-Ney smoothing (Chen &
Goodman 1998), counted with numpy so tens of thousands of lines fit and score in well under a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import torch
from scipy import stats

END, BOS = 0, 1  # symbol ids; characters are 2.. in sorted order. END is predicted, BOS only pads histories

# name -> (what it measures, which way is better); text_metrics returns exactly these keys
METRICS: dict[str, tuple[str, str]] = {
    "copies": ("share of samples that are training lines verbatim", "lower"),
    "novel": ("share of samples that are not training lines", "higher"),
    "unique": ("share of distinct samples", "higher"),
    "novel_real": ("share of samples that are held-out lines never seen in training", "higher"),
    "jsd_1": ("Jensen-Shannon divergence (bits) of character unigrams, samples vs held-out", "lower"),
    "jsd_2": ("Jensen-Shannon divergence (bits) of character bigrams", "lower"),
    "jsd_3": ("Jensen-Shannon divergence (bits) of character trigrams", "lower"),
    "jsd_mean": ("mean of jsd_1, jsd_2, jsd_3", "lower"),
    "len_w1": ("W1 between sample and held-out line lengths (characters)", "lower"),
    "fwd_nll": ("nats/char of the samples under the n-gram LM of the training lines (quality)", "lower"),
    "rev_nll": ("nats/char of the held-out lines under an n-gram LM of the samples (coverage)", "lower"),
    "real_nll": ("nats/char of the held-out lines under the training LM: fwd_nll of real data", "lower"),
    "rev_nll_real": ("rev_nll of real data: LM fit on as many training lines as there are samples", "lower"),
}


def _exclusive_cumsum(x: np.ndarray) -> np.ndarray:
    """[0, x0, x0 + x1, ...] without the total."""
    return np.concatenate([[0], np.cumsum(x)[:-1]]).astype(np.int64)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated aranges: starts[i], starts[i] + 1, ..., starts[i] + counts[i] - 1 for each i."""
    total = int(counts.sum())
    return np.repeat(starts - _exclusive_cumsum(counts), counts) + np.arange(total)


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified KN discounts [0, D1, D2, D3+] from the count-of-counts; plain KN's D = n1/(n1+2n2) if degenerate."""
    n1, n2, n3, n4 = (int((counts == k).sum()) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 > 0 else 0.5
    y = y if 0.0 < y < 1.0 else 0.5
    if min(n1, n2, n3, n4) > 0:
        d = np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
        if np.all((d > 0) & (d <= np.array([1.0, 2.0, 3.0]))):
            return np.concatenate([[0.0], d])
    return np.array([0.0, y, y, y])


class NGramLM:
    """A character n-gram LM, interpolated modified Kneser-Ney, each line padded with n-1 begin symbols and an end.

    Args:
        n: the order (5 = four characters of history).
        alphabet: the characters the model can predict besides the end; default: those in the fit lines.
            Score lines with other characters only after fitting with an alphabet that has them.
    """

    def __init__(self, n: int = 5, alphabet: Iterable[str] | None = None):
        if n < 1:
            raise ValueError(f"n: the n-gram order must be at least 1, got {n}")
        self.n = n
        self.alphabet = None if alphabet is None else sorted(set(alphabet))
        self.fitted = False

    # ---- encoding ----------------------------------------------------------------------------------------------
    def _encode(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(seq, pos): every line as BOS*(n-1) + chars + END in one int64 array, and the positions to predict."""
        lengths = np.fromiter((len(line) for line in lines), dtype=np.int64, count=len(lines))
        codes = np.frombuffer("".join(lines).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        k = np.searchsorted(self._codes, codes)
        known = k < len(self._codes)
        known[known] = self._codes[k[known]] == codes[known]
        if not known.all():
            bad = chr(int(codes[~known][0]))
            raise ValueError(f"NGramLM: the character {bad!r} is not in the model's alphabet (fit with alphabet=)")
        pad = self.n - 1
        start = _exclusive_cumsum(lengths + pad + 1) + pad  # slot of each line's first character
        seq = np.full(int((lengths + pad + 1).sum()), BOS, dtype=np.int64)
        seq[_ranges(start, lengths)] = k + 2
        seq[start + lengths] = END
        return seq, _ranges(start, lengths + 1)

    def _lookup(self, table: np.ndarray, keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Index of each key in the sorted table, -1 where absent or not valid."""
        if len(table) == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        i = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        return np.where(valid & (table[i] == keys), i, -1)

    def _contexts(self, hist: np.ndarray) -> list[np.ndarray]:
        """Context ids per order j (history of the last j symbols) for histories (S, n-1), -1 when never seen."""
        ctx = [np.zeros(hist.shape[0], dtype=np.int64)]
        for j in range(1, self.n):
            prev = ctx[-1]
            keys = np.maximum(prev, 0) * self._base + hist[:, self.n - 1 - j]
            ctx.append(self._lookup(self._ctx_keys[j], keys, prev >= 0))
        return ctx

    # ---- fitting -----------------------------------------------------------------------------------------------
    def fit(self, lines: list[str]) -> NGramLM:
        """Count the n-grams of `lines` and set the smoothed model; returns self."""
        lines = list(lines)
        if not lines:
            raise ValueError("NGramLM.fit: no lines")
        chars = self.alphabet if self.alphabet is not None else sorted(set("".join(lines)))
        self.chars = list(chars)
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._base = len(self.chars) + 2  # symbol ids 0..base-1 (END, BOS, characters)
        self._vp = len(self.chars) + 1  # predictable symbols: the characters and END
        seq, pos = self._encode(lines)
        w = seq[pos]
        # context ids, growing leftwards: ctx_j = (s_{i-j}, ..., s_{i-1}) keyed by (ctx_{j-1}, s_{i-j})
        self._ctx_keys = [np.zeros(1, dtype=np.int64)]
        ctx = [np.zeros(len(pos), dtype=np.int64)]
        for j in range(1, self.n):
            uniq, inv = np.unique(ctx[-1] * self._base + seq[pos - j], return_inverse=True)
            self._ctx_keys.append(uniq)
            ctx.append(inv.reshape(-1))
        # per order j: sorted gram keys (ctx_j, w), their counts, and per context the total, the share held
        # back by discounting (gamma) and the discounts [0, D1, D2, D3+]
        self._grams, self._counts, self._tot, self._gamma, self._d = ([None] * self.n for _ in range(5))
        higher_inv = None  # per position: id of its gram one order up
        for j in range(self.n - 1, -1, -1):
            grams, inv, raw = np.unique(ctx[j] * self._base + w, return_inverse=True, return_counts=True)
            inv = inv.reshape(-1)
            if j == self.n - 1:
                counts = raw
            else:  # continuation counts: distinct symbols seen before the gram; raw counts where it starts with BOS
                _, first = np.unique(higher_inv, return_index=True)
                counts = np.bincount(inv[first], minlength=len(grams))
                if j >= 1:
                    starts_bos = np.zeros(len(grams), dtype=bool)
                    starts_bos[inv] = seq[pos - j] == BOS
                    counts = np.where(starts_bos, raw, counts)
            d = _discounts(counts)
            cid = grams // self._base
            n_ctx = len(self._ctx_keys[j])
            tot = np.bincount(cid, weights=counts, minlength=n_ctx)
            held = np.bincount(cid, weights=d[np.minimum(counts, 3)], minlength=n_ctx)  # discount mass per context
            self._grams[j], self._counts[j], self._d[j] = grams, counts.astype(np.float64), d
            self._tot[j], self._gamma[j] = tot, held / tot
            higher_inv = inv
        self.fitted = True
        return self

    # ---- scoring -----------------------------------------------------------------------------------------------
    def _prob(self, ctx: list[np.ndarray], w: np.ndarray) -> np.ndarray:
        """P(w | context) for context ids per order (each broadcastable with w)."""
        p = np.full(np.broadcast_shapes(ctx[0].shape, w.shape), 1.0 / self._vp)
        for j in range(self.n):
            seen = ctx[j] >= 0
            cid = np.where(seen, ctx[j], 0)
            g = self._lookup(self._grams[j], cid * self._base + w, seen)
            c = np.where(g >= 0, self._counts[j][np.maximum(g, 0)], 0.0)
            d = self._d[j][np.minimum(c, 3).astype(np.int64)]
            p = np.where(seen, (c - d) / self._tot[j][cid] + self._gamma[j][cid] * p, p)
        return p

    def _check(self) -> None:
        if not self.fitted:
            raise ValueError("NGramLM: call fit(lines) before scoring or sampling")

    def log_prob(self, lines: list[str]) -> np.ndarray:
        """Log-probability (nats) of each line, its end included: shape (len(lines),)."""
        self._check()
        lines = list(lines)
        seq, pos = self._encode(lines)
        hist = np.stack([seq[pos - k] for k in range(self.n - 1, 0, -1)], axis=1) if self.n > 1 else \
            np.zeros((len(pos), 0), dtype=np.int64)  # (P, n-1), oldest first
        lp = np.log(self._prob(self._contexts(hist), seq[pos]))  # (P,)
        line_of = np.repeat(np.arange(len(lines)), [len(line) + 1 for line in lines])
        return np.bincount(line_of, weights=lp, minlength=len(lines))

    def nll(self, lines: list[str]) -> float:
        """Mean negative log-likelihood in nats per character, each line's end counted as one character."""
        lines = list(lines)
        if not lines:
            raise ValueError("NGramLM.nll: no lines")
        return float(-self.log_prob(lines).sum() / sum(len(line) + 1 for line in lines))

    def next_probs(self, hist: np.ndarray) -> np.ndarray:
        """Distributions (S, base) over the next symbol for histories (S, n-1) of symbol ids; BOS gets 0."""
        self._check()
        ctx = [c[:, None] for c in self._contexts(hist)]  # each (S, 1)
        w = np.arange(self._base)[None, :]  # (1, base)
        p = self._prob(ctx, w)  # (S, base)
        p[:, BOS] = 0.0
        return p


def ngram_sample(lm: NGramLM, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
                 max_len: int = 64) -> list[str]:
    """n lines drawn symbol by symbol from the LM at `temperature`, cut at max_len characters."""
    lm._check()
    if generator is None:
        raise ValueError("ngram_sample needs a torch.Generator")
    if temperature <= 0:
        raise ValueError(f"temperature: must be positive, got {temperature}")
    hist = np.full((n, lm.n - 1), BOS, dtype=np.int64)  # (n, n-1), oldest first
    out = np.full((n, max_len), END, dtype=np.int64)
    active = np.arange(n)
    for t in range(max_len):
        if len(active) == 0:
            break
        p = lm.next_probs(hist[active]) ** (1.0 / temperature)  # (A, base)
        p = torch.from_numpy(p / p.sum(1, keepdims=True))
        s = torch.multinomial(p, 1, generator=generator)[:, 0].numpy()  # (A,)
        out[active, t] = s
        if lm.n > 1:
            hist[active] = np.concatenate([hist[active, 1:], s[:, None]], axis=1)
        active = active[s != END]
    return ["".join(lm.chars[k - 2] for k in row if k >= 2) for row in _cut_at_end(out)]


def _cut_at_end(rows: np.ndarray) -> list[np.ndarray]:
    """Each row up to (not including) its first END."""
    ends = np.where((rows == END).any(1), (rows == END).argmax(1), rows.shape[1])
    return [row[:e] for row, e in zip(rows, ends, strict=True)]


def ngram_counts(lines: list[str], k: int) -> Counter:
    """Counts of the character k-grams inside the lines (no boundary symbols)."""
    return Counter(line[i : i + k] for line in lines for i in range(len(line) - k + 1))


def jsd(p: Counter, q: Counter) -> float:
    """Jensen-Shannon divergence in bits (0..1) of two count tables; 1 when exactly one is empty, 0 when both are."""
    if not p or not q:
        return float(bool(p) != bool(q))
    keys = list(set(p) | set(q))
    a = np.array([p.get(k, 0) for k in keys], dtype=np.float64)
    b = np.array([q.get(k, 0) for k in keys], dtype=np.float64)
    a, b = a / a.sum(), b / b.sum()
    m = 0.5 * (a + b)

    def kl(x):
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return min(max(0.5 * kl(a) + 0.5 * kl(b), 0.0), 1.0)


def text_metrics(samples: list[str], train_lines: list[str], holdout_lines: list[str], n: int = 5,
                 seed: int = 0) -> dict[str, float]:
    """Every metric in METRICS for generated lines against the training and held-out lines."""
    samples, train_lines, holdout_lines = list(samples), list(train_lines), list(holdout_lines)
    for name, lines in (("samples", samples), ("train_lines", train_lines), ("holdout_lines", holdout_lines)):
        if not lines:
            raise ValueError(f"text_metrics: {name} is empty")
    train_set, hold_set = set(train_lines), set(holdout_lines)
    copies = sum(s in train_set for s in samples) / len(samples)
    fresh_real = hold_set - train_set
    out = {
        "copies": copies,
        "novel": 1.0 - copies,
        "unique": len(set(samples)) / len(samples),
        "novel_real": sum(s in fresh_real for s in samples) / len(samples),
    }
    for k in (1, 2, 3):
        out[f"jsd_{k}"] = jsd(ngram_counts(samples, k), ngram_counts(holdout_lines, k))
    out["jsd_mean"] = (out["jsd_1"] + out["jsd_2"] + out["jsd_3"]) / 3
    out["len_w1"] = float(stats.wasserstein_distance([len(s) for s in samples], [len(s) for s in holdout_lines]))
    alphabet = set("".join(samples)) | set("".join(train_lines)) | set("".join(holdout_lines))
    train_lm = NGramLM(n, alphabet).fit(train_lines)
    out["fwd_nll"] = train_lm.nll(samples)
    out["rev_nll"] = NGramLM(n, alphabet).fit(samples).nll(holdout_lines)
    out["real_nll"] = train_lm.nll(holdout_lines)
    # the reverse LM's quality depends on how many lines it saw: compare with as many real lines
    perm = torch.randperm(len(train_lines), generator=torch.Generator().manual_seed(seed))[: len(samples)]
    out["rev_nll_real"] = NGramLM(n, alphabet).fit([train_lines[i] for i in perm.tolist()]).nll(holdout_lines)
    return {k: float(out[k]) for k in METRICS}


COLLAPSE_UNIQUE = 0.5  # fewer distinct samples than this share: collapse onto a few strings
COLLAPSE_ONE = 0.1  # one string over this share of the samples is named
COPY_SHARE = 0.5  # more verbatim training lines than this share: memorisation


def text_warnings(samples: list[str], train_lines: list[str]) -> list[str]:
    """Plain-language warnings for the doctor: collapse onto a few strings, and copying of training lines."""
    samples = list(samples)
    if not samples:
        return []
    n = len(samples)
    out = []
    counts = Counter(samples)
    unique = len(counts) / n
    frequent = [(s, c) for s, c in counts.most_common() if c > COLLAPSE_ONE * n]
    parts = []
    if unique < COLLAPSE_UNIQUE:
        parts.append(f"only {len(counts):,} distinct strings among the {n:,} samples ({unique:.0%})")
    if frequent:
        named = ", ".join(f"{s!r} is {c / n:.0%}" if s else f"the empty line is {c / n:.0%}" for s, c in frequent[:5])
        more = f" (and {len(frequent) - 5} more strings over {COLLAPSE_ONE:.0%})" if len(frequent) > 5 else ""
        parts.append(f"{named} of the samples{more}")
    if parts:
        out.append(f"Collapse onto a few strings: {'; '.join(parts)}. G keeps writing the same lines instead of "
                   "the variety of the data.")
    train_set = set(train_lines)
    copies = sum(s in train_set for s in samples) / n
    if copies > COPY_SHARE:
        out.append(f"Copying: {copies:.0%} of the samples are training lines verbatim, so G mostly reproduces "
                   "its data; fewer steps or a higher sampling temperature give more new lines, and "
                   "sampling with --novel drops the copies.")
    return out
