"""The text family: short lines (names, words, codes), one sample per line, learned as token sequences.

A line is a row of token indices end-padded to `data.max_len` (data/text.py); D reads one-hot rows (real) or
G's per-position distributions (B, max_len, V) (models/text.py: Gulrajani et al. 2017's residual conv nets).
Samples decode by the argmax of each position, or a draw at a temperature, and stop at the end token. The
vocabulary is saved as JSON in the run's `family_state`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.config import ConfigError
from ganforge.data import text as X
from ganforge.data.base import Dataset
from ganforge.data.batches import InMemoryBatches
from ganforge.data.family import Family, _bad_suffix

PICTURE_LINES = 1000  # lines of the fixed noise decoded at each interval (64 shown; all watched by the doctor)


class TokenBatches(InMemoryBatches):
    """Rows of token indices on the device, handed out as one-hot floats (B, max_len, V)."""

    def next(self) -> tuple[torch.Tensor, None]:
        idx = self.rng.slice(self.sampler.next())
        return F.one_hot(self.data.take(idx), self.data.shape[1]).float(), None  # (B, L) -> (B, L, V)


class Text(Family):
    name = "text"
    arches = ("textcnn", "textrnn")
    sample_suffixes = (".txt",)
    walkable = False
    decoded = True
    sample_options = ("temperature", "novel")  # novel: `ganforge sample --novel` drops training lines (cli.py)

    # ---- loading ---------------------------------------------------------------------------------
    def load(self, lines: list[str], name: str, cfg, seed: int, source: dict, state: dict | None) -> Dataset:
        """A Dataset of the lines (a holdout split off), with the saved vocabulary and max_len when resuming."""
        max_len = cfg.max_len or None
        if state and state.get("vocab"):
            vocab = X.Vocab.from_json(state["vocab"])
            max_len = int(state["max_len"])
        else:
            vocab = X.Vocab.build(lines, cfg.tokens, cfg.lowercase)
        normalised = [line for line in (vocab.normalize(line) for line in lines) if line]
        kept, max_len, fit = X.fit_length(normalised, vocab, max_len)
        if not state:  # the alphabet of the lines kept (train and holdout): a dropped line's tokens are never made
            vocab = X.Vocab.build(kept, cfg.tokens, cfg.lowercase)
        if cfg.holdout > 0:
            if len(kept) < 2:
                raise ConfigError(f"{name}: {len(kept)} line to learn from; a holdout needs at least 2 (or set "
                                  "data.holdout = 0)")
            train, hold = X.holdout_split(kept, cfg.holdout, seed)
        else:
            train, hold = kept, []
        x = vocab.encode(train, max_len)  # (N, L) int64
        meta = {"vocab": vocab.to_json(), "max_len": max_len}
        dropped = f"; {fit['dropped']:,} lines longer than {max_len} tokens dropped" if fit["dropped"] else ""
        report = [f"text {name}: {len(lines):,} lines, {len(vocab) - 1} {cfg.tokens[:-1]} tokens + end, max_len "
                  f"{max_len}{dropped}; {len(train):,} train, {len(hold):,} holdout"]
        return Dataset(name, x, family=self, source=source, report=report, meta=meta,
                       sample_shape=(max_len, len(vocab)),
                       extra={"train_lines": train, "holdout_lines": hold, "vocab": vocab})

    def check_config(self, cfg, data: Dataset) -> None:
        super().check_config(cfg, data)
        if cfg.model.conditional != "none":
            raise ConfigError("model.conditional: text lines carry no class labels; set model.conditional = 'none'")
        if cfg.model.pack != 1:
            raise ConfigError("model.pack: packing is for flat rows (points, tables), not token sequences")
        if cfg.model.d.arch != "textcnn":
            raise ConfigError(f"model.d.arch: '{cfg.model.d.arch}' is a generator; text is read by textcnn")
        if cfg.model.g.arch == "textrnn":
            if cfg.model.g.blocks < 1:
                raise ConfigError(f"model.g.blocks: the textrnn generator's LSTM layers, at least 1, got "
                                  f"{cfg.model.g.blocks}")
            if cfg.model.z_dim < data.shape[0]:
                raise ConfigError(f"model.z_dim: the textrnn generator draws each of {data.shape[0]} tokens "
                                  f"(max_len) from one noise coordinate; set z_dim to at least {data.shape[0]}")
        elif cfg.train.mle_steps or cfg.loss.mle_weight:  # kept from the text preset, whose G is the LSTM
            raise ConfigError(f"train.mle_steps = {cfg.train.mle_steps}, loss.mle_weight = {cfg.loss.mle_weight}: "
                              "maximum likelihood needs model.g.arch = 'textrnn'; set both to 0 or use --preset "
                              "text-cnn")

    # ---- networks ----------------------------------------------------------------------------------
    def generator(self, cfg, shape, num_classes, state):
        from ganforge.models.text import TextGenerator, TextRNNGenerator

        length, vocab = shape
        if cfg.g.arch == "textrnn":
            return TextRNNGenerator(cfg.z_dim, vocab, length, dim=cfg.g.channels, layers=cfg.g.blocks)
        return TextGenerator(cfg.z_dim, vocab, length, dim=cfg.g.channels, blocks=cfg.g.blocks, mode=cfg.text_head,
                             tau=cfg.tau)

    def check_state(self, state, shape, weights) -> None:
        vocab, max_len = X.Vocab.from_json(state["vocab"]), int(state["max_len"])
        if "head.weight" in weights:  # the LSTM G: only its output layer's size depends on the data
            fits = weights["head.weight"].shape[0] == len(vocab)
        else:  # the conv G: its first layer writes max_len positions
            out, fc = weights.get("out.weight"), weights.get("fc.weight")
            fits = out is not None and out.shape[0] == len(vocab) and fc is not None and fc.shape[0] % max_len == 0
        if tuple(shape) != (max_len, len(vocab)) or not fits:
            raise ValueError(f"the saved vocabulary ({len(vocab)} tokens, max_len {max_len}) does not match the "
                             "generator's weights")

    def discriminator(self, cfg, shape, num_classes, state):
        from ganforge.models.text import TextDiscriminator

        length, vocab = shape
        return TextDiscriminator(vocab, length, dim=cfg.d.channels, blocks=cfg.d.blocks)

    def batches(self, data, sampler, streams, cfg, device):
        return TokenBatches(data, sampler, streams)

    def nll(self, run, real):
        """The LSTM G's mean NLL per token of one-hot real rows (B, L, V), given fresh noise."""
        z = run.rng.randn("noise", run.cfg.train.batch_size, run.cfg.model.z_dim)  # this rank's share
        return run.par.G(z, None, tokens=real.argmax(-1))

    def picture_count(self, cfg) -> int:
        return PICTURE_LINES

    # ---- samples -------------------------------------------------------------------------------------
    def generate(self, s, z, y, gen, batch, temperature: float | None = None, novel: bool = False,
                 **options) -> list[str]:
        """Lines of text. The conv G: each position's argmax (temperature None or 0), else a draw at
        `temperature`. The LSTM G draws token by token from z at `temperature` (None: 1; 0: the most likely).
        `novel`: the lines that are training lines verbatim are dropped (the run's data is read again and must be
        unchanged); how many is left in `s.dropped`."""
        lines = self._generate_lines(s, z, y, gen, batch, temperature)
        if not novel:
            return lines
        from ganforge.data import load_dataset
        from ganforge.data.user import check_same_source

        data = load_dataset(s.cfg.data, seed=s.cfg.train.seed, state=s.family_state)
        check_same_source(s.data_source, data, "--novel")
        lines, s.dropped = drop_copies(lines, data.extra["train_lines"])
        return lines

    def _generate_lines(self, s, z, y, gen, batch, temperature: float | None) -> list[str]:
        from ganforge.models.text import TextRNNGenerator, decode_samples

        if y is not None:
            raise ValueError("labels given, but a text generator is not conditional")
        if temperature is not None and temperature < 0:
            raise ConfigError(f"--temperature must be at least 0 (0: the most likely token), got {temperature}")
        if isinstance(s.G, TextRNNGenerator):  # it draws the tokens itself, from z
            s.G.temperature = 1.0 if temperature is None else temperature
            try:
                idx = s._generate(z, None, batch).argmax(-1)  # (n, L, V) one-hot -> (n, L)
            finally:
                s.G.temperature = 1.0
        else:
            probs = s._generate(z, None, batch)  # (n, L, V)
            idx = decode_samples(probs, temperature or None,
                                 gen if gen is not None else torch.Generator().manual_seed(0))
        return X.Vocab.from_json(s.family_state["vocab"]).decode(idx)

    def lines(self, samples: torch.Tensor, data: Dataset) -> list[str]:
        """G's distributions (n, L, V) of the fixed noise -> lines, by the argmax."""
        return data.extra["vocab"].decode(samples.float().argmax(-1).cpu())

    def picture(self, samples, path: Path, data, cfg, title: str, nrow: int = 0) -> Path:
        from ganforge.viz.text import save_text_panel

        return save_text_panel(self.lines(samples, data), path, title, real_lines=data.extra["train_lines"])

    def as_text(self, samples, data) -> str:
        return "\n".join(self.lines(samples, data)[:64])

    def watch(self, samples, data) -> tuple[dict, list[str]]:
        from ganforge.metrics.text import text_warnings

        lines, train = self.lines(samples, data), data.extra["train_lines"]
        train_set = set(train)
        stats = {"unique": len(set(lines)) / len(lines), "copies": sum(t in train_set for t in lines) / len(lines)}
        return stats, text_warnings(lines, train)

    def real_for_eval(self, data, n: int, seed: int) -> list[str]:
        """The held-out lines: what the metrics call real."""
        return data.extra["holdout_lines"]

    def default_metrics(self, inp) -> list[str]:
        return ["text"]

    def write_samples(self, samples, out: Path, data_cfg=None, labels=None, nrow: int = 0, names=None) -> str:
        from ganforge import fsio

        if out.suffix.lower() != ".txt":
            raise _bad_suffix(self, out)
        fsio.atomic_write_text(out, "".join(line + "\n" for line in samples))
        return f"{len(samples):,} lines to {out}"


def load_text_path(path: str, cfg, seed: int, state: dict | None) -> Dataset:
    """A UTF-8 text file (one sample per line) or a CSV's `data.column` as a text Dataset."""
    lines = X.read_lines(path, cfg.column or None)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return TEXT.load(lines, Path(path).name, cfg, seed, {"path": path, "sha256": digest, "n": len(lines)}, state)


def load_names(cfg, seed: int, state: dict | None) -> Dataset:
    """The US census (1990) surnames shipped in the `names` package, lowercased."""
    return TEXT.load(X.surnames(lowercase=True), "names", cfg, seed, {}, state)


def drop_copies(lines: list[str], train_lines: list[str]) -> tuple[list[str], int]:
    """The lines that are not training lines verbatim, and how many were dropped."""
    seen = set(train_lines)
    kept = [line for line in lines if line not in seen]
    return kept, len(lines) - len(kept)


TEXT = Text()
