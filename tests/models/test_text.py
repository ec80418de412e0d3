import pytest
import torch
import torch.nn.functional as F

from ganforge.data.text import prepare_text
from ganforge.metrics.text import text_metrics
from ganforge.models.text import (
    CharLSTM,
    ResBlock1d,
    TextDiscriminator,
    TextGenerator,
    TextRNNGenerator,
    decode_samples,
    gumbel_softmax_st,
    sequence_nll,
)


def test_generator_shapes_and_reference_layout():
    G = TextGenerator(z_dim=8, vocab_size=5, max_len=7, dim=16, blocks=3)
    p = G(torch.randn(4, 8))
    assert p.shape == (4, 7, 5) and (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(4, 7))
    assert G.fc.weight.shape == (16 * 7, 8) and len(G.blocks) == 3
    assert all(b.conv1.kernel_size == (5,) and b.conv2.kernel_size == (5,) for b in G.blocks)
    assert G.out.kernel_size == (1,) and G.out.out_channels == 5


def test_residual_block_formula():
    torch.manual_seed(0)
    block, x = ResBlock1d(3), torch.randn(2, 3, 6)
    h = F.conv1d(F.relu(x), block.conv1.weight, block.conv1.bias, padding=2)
    expected = x + 0.3 * F.conv1d(F.relu(h), block.conv2.weight, block.conv2.bias, padding=2)
    torch.testing.assert_close(block(x), expected)


def test_gumbel_mode_is_hard_forward_soft_backward_and_seeded():
    G = TextGenerator(4, 6, 5, dim=8, blocks=1, mode="gumbel", tau=0.5)
    z = torch.randn(3, 4)
    state = torch.get_rng_state()
    a = G(z, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)  # the noise came from the generator passed in
    torch.testing.assert_close(a, G(z, generator=torch.Generator().manual_seed(0)))
    assert set(a.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 5))
    # the gradient is the soft sample's: same noise, compare with softmax((logits + g) / tau)
    logits = torch.randn(2, 3, 6, requires_grad=True)
    w = torch.randn(2, 3, 6)
    (gumbel_softmax_st(logits, 0.5, torch.Generator().manual_seed(1)) * w).sum().backward()
    hard_grad = logits.grad.clone()
    logits.grad = None
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(1))
    soft = torch.softmax((logits - torch.log(-torch.log(u))) / 0.5, dim=-1)
    (soft * w).sum().backward()
    torch.testing.assert_close(hard_grad, logits.grad)
    torch.manual_seed(4)  # without a generator (the training loop): torch's global stream
    b = G(z)
    torch.manual_seed(4)
    torch.testing.assert_close(G(z), b)


def test_discriminator_reads_one_hot_and_softmax():
    D = TextDiscriminator(vocab_size=4, max_len=6, dim=8, blocks=2)
    real = F.one_hot(torch.randint(4, (5, 6)), 4).float()
    fake = torch.softmax(torch.randn(5, 6, 4), -1).requires_grad_(True)
    assert D(real)[0].shape == (5,) and D(real)[1] is None
    D(fake)[0].sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"expected \(B, 6, 4\) token distributions, got \(5, 4, 6\)"):
        D(real.transpose(1, 2))


def test_constructor_errors():
    with pytest.raises(ValueError, match="mode: 'hard' is not one of softmax, gumbel"):
        TextGenerator(4, 5, 6, mode="hard")
    with pytest.raises(ValueError, match="tau: the Gumbel-softmax temperature must be positive"):
        TextGenerator(4, 5, 6, mode="gumbel", tau=0.0)
    with pytest.raises(ValueError, match="vocab_size: must be at least 2, got 1"):
        TextDiscriminator(1, 6)
    with pytest.raises(ValueError, match="max_len: must be at least 1, got 0"):
        TextGenerator(4, 5, 0)


def test_decode_samples_argmax_and_temperature():
    probs = torch.tensor([[[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]])
    torch.testing.assert_close(decode_samples(probs), torch.tensor([[1, 0]]))
    p = torch.tensor([0.2, 0.8, 0.0]).expand(1, 20_000, 3)
    state = torch.get_rng_state()
    s1 = decode_samples(p, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(s1, decode_samples(p, 1.0, torch.Generator().manual_seed(0)))
    assert (s1 == 1).float().mean().item() == pytest.approx(0.8, abs=0.015) and not (s1 == 2).any()
    # T = 2 flattens 0.2 : 0.8 to sqrt(0.2) : sqrt(0.8) = 1/3 : 2/3
    s2 = decode_samples(p, 2.0, torch.Generator().manual_seed(0))
    assert (s2 == 1).float().mean().item() == pytest.approx(2 / 3, abs=0.015)
    assert (decode_samples(p, 0.05, torch.Generator().manual_seed(0)) == 1).all()
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        decode_samples(p, 1.0)
    with pytest.raises(ValueError, match="temperature: must be positive"):
        decode_samples(p, 0.0, torch.Generator())


def test_sequence_nll_counts_up_to_the_first_end():
    tokens = torch.tensor([[1, 2, 0, 0], [3, 3, 3, 3]])
    logits = torch.zeros(2, 4, 4)  # uniform: log 4 nats per token
    logits[0, 3, 1] = 50.0  # after the end: must not count
    assert sequence_nll(logits, tokens).item() == pytest.approx(torch.log(torch.tensor(4.0)).item(), rel=1e-6)
    logits[0, 1, 2] = 50.0  # the second token is now certain: of the 7 counted tokens (3 + 4), one costs ~0
    assert sequence_nll(logits, tokens).item() == pytest.approx(6 / 7 * torch.log(torch.tensor(4.0)).item(), rel=1e-5)


def _alternating(n: int, seed: int) -> list[str]:
    """The toy language: a and b alternating, 2 to 6 letters, then an optional c (20 distinct lines)."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(2, 7, (n,), generator=g).tolist()
    first = torch.randint(2, (n,), generator=g).tolist()
    tail = (torch.rand(n, generator=g) < 0.5).tolist()
    return ["".join("ab"[(f + i) % 2] for i in range(kk)) + ("c" if t else "") for kk, f, t in zip(k, first, tail,
                                                                                                   strict=True)]


LANGUAGE = {"".join("ab"[(f + i) % 2] for i in range(k)) + c for k in range(2, 7) for f in (0, 1) for c in ("", "c")}


def test_char_lstm_shapes_sampling_and_tiny_training():
    torch.manual_seed(0)
    data = prepare_text("alt", _alternating(400, 0), max_len=7, seed=0)
    lm = CharLSTM(len(data.vocab), dim=32, layers=1, max_len=data.max_len)
    assert lm(data.x[:5]).shape == (5, 7, 4)
    opt = torch.optim.Adam(lm.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = data.x[torch.randint(len(data.x), (64,), generator=g)]
        loss = sequence_nll(lm(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = torch.get_rng_state()
    rows = lm.sample(300, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)
    assert rows.shape == (300, 7)
    ended = (rows == 0).cumsum(1) > 0
    assert (rows[ended] == 0).all()  # nothing after the first end
    lines = data.vocab.decode(rows)
    assert lines == data.vocab.decode(lm.sample(300, 1.0, torch.Generator().manual_seed(1)))
    assert sum(s in LANGUAGE for s in lines) / len(lines) > 0.9
    assert loss.item() < 0.8  # the language's entropy is about 0.55 nats/token
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        lm.sample(2, 1.0)


def _wgan_gp_train(G, D, data, steps: int, n_critic: int, g: torch.Generator, batch: int = 64):
    """WGAN-GP (Gulrajani et al. 2017): n_critic D steps per G step, lambda = 10, Adam(2e-3, 0.5, 0.9)."""
    opt_g = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 2e-3, betas=(0.5, 0.9))
    for _ in range(steps):
        for _ in range(n_critic):
            real = data.one_hot(torch.randint(len(data.x), (batch,), generator=g))  # (B, L, V)
            with torch.no_grad():
                fake = G(torch.randn(batch, G.z_dim, generator=g))
            x_hat = torch.lerp(fake, real, torch.rand(batch, 1, 1, generator=g)).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat)[0].sum(), x_hat, create_graph=True)
            gp = (grad.flatten(1).norm(dim=1) - 1.0).square().mean()
            loss_d = D(fake)[0].mean() - D(real)[0].mean() + 10.0 * gp
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        loss_g = -D(G(torch.randn(batch, G.z_dim, generator=g)))[0].mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()


def test_wgan_gp_text_gan_learns_a_toy_language():
    """G and D train together with WGAN-GP; the samples' forward NLL under the training LM drops (~4 s idle)."""
    torch.manual_seed(0)  # weight init only; every draw in training takes `g`
    data = prepare_text("alt", _alternating(1000, 0), max_len=7, holdout=0.2, seed=0)
    G = TextGenerator(16, len(data.vocab), data.max_len, dim=32, blocks=1)
    D = TextDiscriminator(len(data.vocab), data.max_len, dim=32, blocks=1)
    g = torch.Generator().manual_seed(1)

    def samples() -> list[str]:
        with torch.no_grad():
            return data.vocab.decode(decode_samples(G(torch.randn(500, 16, generator=g))))

    def measure(lines):
        m = text_metrics(lines, data.train_lines, data.holdout_lines, n=4)
        return m["fwd_nll"], sum(s in LANGUAGE for s in lines) / len(lines), m

    before_nll, before_valid, _ = measure(samples())
    _wgan_gp_train(G, D, data, steps=120, n_critic=3, g=g)
    lines = samples()
    after_nll, after_valid, m = measure(lines)
    assert set("".join(lines)) <= {"a", "b", "c"}
    # untrained: 3.8 to 6.2 nats/char over seeds, about 5% valid; trained (seeds 0-3): 0.85 to 1.05, 82% to 91% valid
    assert after_nll < 1.3 and after_nll < before_nll - 2.0
    assert after_valid > 0.75 and before_valid < 0.2
    assert m["real_nll"] < after_nll  # held-out real lines still score better than the GAN's samples
    assert len(set(lines)) > 5  # not collapsed onto one string


def test_rnn_generator_writes_end_padded_one_hot_rows_from_z():
    torch.manual_seed(0)
    G = TextRNNGenerator(z_dim=9, vocab_size=4, max_len=6, dim=8).eval()
    z = torch.randn(200, 9)
    rows = G(z)
    assert rows.shape == (200, 6, 4)
    assert torch.equal(rows.sum(-1), torch.ones(200, 6)) and set(rows.unique().tolist()) == {0.0, 1.0}
    idx = rows.argmax(-1)
    ended = (idx == 0).cumsum(1) > 0
    assert ended.any() and (idx[ended] == 0).all()  # the end token, then only end tokens, as in the real rows
    assert torch.equal(G(z), rows)  # a function of z
    assert not torch.equal(G(torch.randn(200, 9)), rows)
    G.temperature = 0.0  # the most likely token: the first token depends on z only through the LSTM's state
    greedy = G(z)
    assert torch.equal(greedy, G(z)) and greedy.shape == rows.shape


def test_rnn_generator_draws_from_its_softmax_by_inverse_cdf():
    """Token t is drawn at the uniform Phi(z[:, t]): the first token's frequencies match its softmax."""
    torch.manual_seed(0)
    G = TextRNNGenerator(z_dim=3, vocab_size=5, max_len=3, dim=8).eval()
    z = torch.randn(20000, 3)
    z[:, 1:] = 0.0
    G.init.weight.data.zero_()  # the first state no longer depends on z: one softmax for every sample
    with torch.no_grad():
        h, _ = G.lstm(G.embed.weight[:1][None], G._state(z[:1]))
        p = torch.softmax(G.head(h[0, 0]), -1)
    freq = torch.bincount(G(z)[:, 0].argmax(-1), minlength=5).float() / len(z)
    torch.testing.assert_close(freq, p, atol=0.015, rtol=0)


def test_rnn_generator_straight_through_gradient_reaches_every_step():
    torch.manual_seed(0)
    G = TextRNNGenerator(z_dim=5, vocab_size=4, max_len=5, dim=8).train()
    rows = G(torch.randn(16, 5))
    assert set(rows.detach().unique().tolist()) <= {0.0, 1.0}  # one-hot forward
    (rows[:, -1, 1:] * torch.randn(16, 3)).sum().backward()  # a score of the last position only
    assert G.embed.weight.grad.abs().sum() > 0  # reached through the tokens fed back
    assert G.init.weight.grad.abs().sum() > 0


def test_rnn_generator_nll_is_teacher_forced_cross_entropy():
    torch.manual_seed(0)
    G = TextRNNGenerator(z_dim=4, vocab_size=4, max_len=4, dim=8)
    tokens, z = torch.tensor([[1, 2, 0, 0], [3, 3, 3, 3]]), torch.randn(2, 4)
    state = G._state(z)
    inp = torch.tensor([[0, 1, 2, 0], [0, 3, 3, 3]])
    h, _ = G.lstm(G.embed(inp), state)
    expected = sequence_nll(G.head(h), tokens)
    torch.testing.assert_close(G.nll(tokens, z), expected)
    torch.testing.assert_close(G(z, None, tokens=tokens), expected)  # through forward (DDP)


def test_rnn_generator_errors():
    with pytest.raises(ValueError, match="z_dim must be at least 6, got 5"):
        TextRNNGenerator(z_dim=5, vocab_size=4, max_len=6)
    with pytest.raises(ValueError, match="at least 1 layer"):
        TextRNNGenerator(z_dim=8, vocab_size=4, max_len=6, layers=0)
