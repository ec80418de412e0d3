"""Character-level text networks: the WGAN-GP language model's G and D, and a char LSTM baseline.

TextGenerator / TextDiscriminator follow Gulrajani et al. 2017 ("Improved Training of Wasserstein GANs",
the character-level language model): 1D convolutional residual nets over (B, max_len, V) token
distributions. G writes a softmax per position; D reads one-hot real rows or G's softmax. Randomness (Gumbel
noise, sampling) comes from a torch.Generator passed in; in the training loop G's Gumbel noise takes torch's
global stream, which the loop swaps for the run's own during a step (rng.RunRandom.active).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.models.layers import gumbel_noise

MODES = ("softmax", "gumbel")
RESIDUAL_SCALE = 0.3  # the reference code scales each residual branch by 0.3


class ResBlock1d(nn.Module):
    """x + 0.3 * conv(relu(conv(relu(x)))), two Conv1d of kernel 5 keeping the length."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, dim, 5, padding=2)
        self.conv2 = nn.Conv1d(dim, dim, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.conv2(F.relu(self.conv1(F.relu(x))))  # (B, dim, L)


def _check_sizes(vocab_size: int, max_len: int, dim: int, blocks: int) -> None:
    for name, value, least in (("vocab_size", vocab_size, 2), ("max_len", max_len, 1), ("dim", dim, 1),
                               ("blocks", blocks, 0)):
        if value < least:
            raise ValueError(f"{name}: must be at least {least}, got {value}")


def gumbel_softmax_st(logits: torch.Tensor, tau: float, generator: torch.Generator | None) -> torch.Tensor:
    """Straight-through Gumbel-softmax over the last axis: one-hot forward, the soft sample's gradient."""
    soft = torch.softmax((logits + gumbel_noise(logits.shape, logits, generator)) / tau, dim=-1)
    hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


class TextGenerator(nn.Module):
    """z (B, z_dim) -> token probabilities (B, max_len, V): a softmax per position, or straight-through Gumbel."""

    def __init__(self, z_dim: int, vocab_size: int, max_len: int, dim: int = 128, blocks: int = 5,
                 mode: str = "softmax", tau: float = 1.0):
        super().__init__()
        _check_sizes(vocab_size, max_len, dim, blocks)
        if mode not in MODES:
            raise ValueError(f"mode: '{mode}' is not one of {', '.join(MODES)}")
        if tau <= 0:
            raise ValueError(f"tau: the Gumbel-softmax temperature must be positive, got {tau}")
        self.z_dim, self.vocab_size, self.max_len, self.dim, self.mode, self.tau = (
            z_dim, vocab_size, max_len, dim, mode, tau)
        self.fc = nn.Linear(z_dim, dim * max_len)
        self.blocks = nn.Sequential(*[ResBlock1d(dim) for _ in range(blocks)])
        self.out = nn.Conv1d(dim, vocab_size, 1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised token scores (B, max_len, V)."""
        h = self.fc(z).view(z.shape[0], self.dim, self.max_len)  # (B, dim, L)
        return self.out(self.blocks(h)).transpose(1, 2)  # (B, V, L) -> (B, L, V)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Token probabilities (B, max_len, V); unconditional, so `y` is ignored (the interface of every G).

        mode "gumbel" draws straight-through one-hots in training mode only; in eval mode both modes return the
        softmax, which sampling decodes (argmax, or a draw at a temperature).
        """
        logits = self.logits(z)  # (B, L, V)
        if self.mode == "softmax" or not self.training:  # eval: the distribution itself, for decoding
            return torch.softmax(logits, dim=-1)
        return gumbel_softmax_st(logits, self.tau, generator)


class TextRNNGenerator(nn.Module):
    """z (B, z_dim) -> one-hot rows (B, max_len, V) written token by token by an LSTM: the autoregressive G.

    z sets the LSTM's first state, and token t is drawn from the LSTM's softmax by inverse CDF at the uniform
    Phi(z[:, t]): G is a function of z (the fixed noise's pictures and `ganforge sample --seed` repeat; z_dim must
    be at least max_len). In training the one-hot carries the softmax's straight-through gradient (Bengio et al.
    2013) back through every earlier token, so D only ever reads one-hot rows. After the end token every position
    is the end token, as in the real rows. Its likelihood `nll(tokens, z)` lets G learn by maximum likelihood
    first and keeps it anchored to the real lines while D trains it (train.mle_steps, loss.mle_weight).
    """

    def __init__(self, z_dim: int, vocab_size: int, max_len: int, dim: int = 128, layers: int = 1):
        super().__init__()
        _check_sizes(vocab_size, max_len, dim, 1)
        if layers < 1:
            raise ValueError(f"layers: an LSTM needs at least 1 layer, got {layers}")
        if z_dim < max_len:
            raise ValueError(f"model.z_dim: the textrnn generator draws each of {max_len} tokens from one noise "
                             f"coordinate, so z_dim must be at least {max_len}, got {z_dim}")
        self.z_dim, self.vocab_size, self.max_len, self.dim, self.layers = z_dim, vocab_size, max_len, dim, layers
        self.temperature = 1.0  # eval mode: sampling temperature (0: the most likely token at each position)
        self.embed = nn.Embedding(vocab_size, dim)  # index 0 (end) also starts every line
        self.init = nn.Linear(z_dim, 2 * layers * dim)  # z -> the LSTM's first (h, c)
        self.lstm = nn.LSTM(dim, dim, layers, batch_first=True)
        self.head = nn.Linear(dim, vocab_size)

    def _state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hc = torch.tanh(self.init(z)).view(len(z), 2, self.layers, self.dim).permute(1, 2, 0, 3)  # (2, layers, B, dim)
        return hc[0].contiguous(), hc[1].contiguous()

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None) -> torch.Tensor:
        """One-hot rows (B, max_len, V) for noise z; with `tokens` (B, max_len), their mean NLL per token instead
        (teacher forcing, through forward so that DDP averages its gradient too). `y` is ignored."""
        if tokens is not None:
            return self.nll(tokens, z)
        n, v = len(z), self.vocab_size
        u = torch.special.ndtr(z[:, : self.max_len].float())  # (B, L) one uniform per position
        temperature = 1.0 if self.training else self.temperature
        end = F.one_hot(torch.zeros(n, dtype=torch.long, device=z.device), v).to(z.dtype)  # (B, V)
        alive = torch.ones(n, 1, device=z.device, dtype=z.dtype)  # (B, 1) 0 once the end token was written
        x, state, rows = self.embed.weight[:1].expand(n, -1), self._state(z), []  # x (B, dim): the start token
        for t in range(self.max_len):
            h, state = self.lstm(x[:, None], state)  # (B, 1, dim)
            logits = self.head(h[:, 0])  # (B, V)
            if temperature == 0:
                p = torch.softmax(logits, dim=-1)
                idx = logits.argmax(-1)
            else:
                p = torch.softmax(logits / temperature, dim=-1)  # (B, V)
                idx = (p.cumsum(-1) < u[:, t : t + 1]).sum(-1).clamp(max=v - 1)  # inverse CDF
            hard = F.one_hot(idx, v).to(p.dtype)
            tok = hard - p.detach() + p if self.training else hard  # straight-through in training
            tok = alive * tok + (1 - alive) * end
            rows.append(tok)
            alive = alive * (1 - hard[:, :1])
            x = tok @ self.embed.weight  # (B, V) @ (V, dim): the token just written is the next input
        return torch.stack(rows, 1)  # (B, L, V)

    def nll(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Mean nats per token of end-padded rows (B, L) given noise z (teacher forcing; as CharLSTM)."""
        start = torch.zeros_like(tokens[:, :1])  # (B, 1)
        h, _ = self.lstm(self.embed(torch.cat([start, tokens[:, :-1]], dim=1)), self._state(z))  # (B, L, dim)
        return sequence_nll(self.head(h), tokens)


class TextDiscriminator(nn.Module):
    """Token distributions (B, max_len, V), one-hot real or G's softmax -> (logits (B,), None)."""

    def __init__(self, vocab_size: int, max_len: int, dim: int = 128, blocks: int = 5):
        super().__init__()
        _check_sizes(vocab_size, max_len, dim, blocks)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.inp = nn.Conv1d(vocab_size, dim, 1)
        self.blocks = nn.Sequential(*[ResBlock1d(dim) for _ in range(blocks)])
        self.out = nn.Linear(dim * max_len, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """(logits (B,), None): unconditional, no class head; `y` is ignored (the interface of every D)."""
        if x.shape[1:] != (self.max_len, self.vocab_size):
            raise ValueError(f"TextDiscriminator: expected (B, {self.max_len}, {self.vocab_size}) token "
                             f"distributions, got {tuple(x.shape)}")
        h = self.blocks(self.inp(x.transpose(1, 2)))  # (B, L, V) -> (B, V, L) -> (B, dim, L)
        return self.out(h.flatten(1)).squeeze(1), None  # (B, dim * L) -> (B,)


def decode_samples(probs: torch.Tensor, temperature: float | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Token probabilities (B, L, V) -> indices (B, L): the argmax, or a draw from probs^(1/T) renormalised."""
    if temperature is None:
        return probs.argmax(-1)
    if temperature <= 0:
        raise ValueError(f"temperature: must be positive (or None for the argmax), got {temperature}")
    if generator is None:
        raise ValueError("decode_samples: sampling at a temperature needs a torch.Generator")
    b, n, v = probs.shape
    logits = torch.log(probs.double().clamp_min(1e-30)) / temperature  # (B, L, V)
    p = torch.softmax(logits, dim=-1).reshape(b * n, v)  # (B * L, V)
    return torch.multinomial(p, 1, generator=generator).view(b, n)


class CharLSTM(nn.Module):
    """An autoregressive LSTM language model over token indices; index 0 (end) also starts every line."""

    def __init__(self, vocab_size: int, dim: int = 128, layers: int = 1, max_len: int = 64):
        super().__init__()
        _check_sizes(vocab_size, max_len, dim, 1)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = nn.Embedding(vocab_size, dim)
        self.lstm = nn.LSTM(dim, dim, layers, batch_first=True)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, L, V) for each position of end-padded rows (B, L), given the tokens before it."""
        start = torch.zeros_like(tokens[:, :1])  # (B, 1): the end token doubles as the start
        h, _ = self.lstm(self.embed(torch.cat([start, tokens[:, :-1]], dim=1)))  # (B, L, dim)
        return self.head(h)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n end-padded rows (n, max_len) drawn token by token at `temperature`."""
        if generator is None:
            raise ValueError("CharLSTM.sample needs a torch.Generator")
        if temperature <= 0:
            raise ValueError(f"temperature: must be positive, got {temperature}")
        device = self.head.weight.device
        out = torch.zeros(n, self.max_len, dtype=torch.long, device=device)  # (n, L)
        tok = torch.zeros(n, 1, dtype=torch.long, device=device)  # (n, 1) the start token
        done = torch.zeros(n, dtype=torch.bool, device=device)
        state = None
        for t in range(self.max_len):
            h, state = self.lstm(self.embed(tok), state)  # (n, 1, dim)
            p = torch.softmax(self.head(h[:, 0]).double() / temperature, dim=-1)  # (n, V)
            nxt = torch.multinomial(p, 1, generator=generator)[:, 0]  # (n,)
            nxt = nxt.masked_fill(done, 0)
            out[:, t] = nxt
            done |= nxt == 0
            if done.all():
                break
            tok = nxt[:, None]
        return out


def sequence_nll(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean nats per token of end-padded rows (B, L) under logits (B, L, V), up to and including the first end."""
    # position t counts while no end token came before it
    before = torch.cumsum((tokens == 0).long(), dim=1) - (tokens == 0).long()  # (B, L) ends strictly before t
    mask = (before == 0).float()
    nll = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")  # (B, L)
    return (nll * mask).sum() / mask.sum()
