"""CTGAN networks and training-by-sampling: heads, pac, seeded draws, exact sampler frequencies, a tiny GAN."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ganforge.config import ConfigError
from ganforge.data.tables import Span, TableTransform, infer_kinds
from ganforge.metrics.tables import quality_report
from ganforge.models.tabular import ConditionSampler, TableDiscriminator, TableGenerator

SPANS = [Span("tanh", 1, "v", "value", 0), Span("softmax", 3, "v", "mode", 1), Span("softmax", 2, "c", "category", 4)]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Generator and discriminator


def test_generator_heads_and_residual_widths():
    G = TableGenerator(z_dim=8, cond_dim=2, spans=SPANS, hidden=(16, 32))
    assert G.out.in_features == 8 + 2 + 16 + 32  # each residual block concatenates its input
    z, cond = torch.randn(64, 8, generator=gen(1)), torch.zeros(64, 2)
    soft = G(z, cond, gen(2))  # training mode: Gumbel-softmax
    assert soft.shape == (64, 6)
    assert soft[:, 0].abs().max() < 1
    torch.testing.assert_close(soft[:, 1:4].sum(1), torch.ones(64))
    torch.testing.assert_close(soft[:, 4:6].sum(1), torch.ones(64))
    assert ((soft[:, 1:4] > 0) & (soft[:, 1:4] < 1)).any()
    G.eval()
    hard = G(z, cond, gen(2))  # eval mode: one-hots
    assert set(hard[:, 1:].unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(hard[:, 4:6].sum(1), torch.ones(64))


def test_hard_one_hots_are_draws_from_the_softmax():
    G = TableGenerator(z_dim=1, cond_dim=0, spans=[Span("softmax", 2, "c", "category", 0)], hidden=())
    raw = torch.tensor([[0.0, math.log(3.0)]]).repeat(40_000, 1)  # softmax = (0.25, 0.75)
    share = G.activate(raw, gen(0), hard=True)[:, 1].mean().item()
    assert share == pytest.approx(0.75, abs=0.01)


def test_draws_are_seeded_and_leave_the_global_rng_alone():
    G = TableGenerator(z_dim=4, cond_dim=0, spans=SPANS, hidden=(8,))
    D = TableDiscriminator(data_dim=6, cond_dim=0, pac=2, hidden=(8, 8), dropout=0.5)
    z, cond = torch.randn(10, 4, generator=gen(0)), torch.zeros(10, 0)
    state = torch.get_rng_state()
    a, b = G(z, cond, gen(5)), G(z, cond, gen(5))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, G(z, cond, gen(6)))
    torch.testing.assert_close(D(a, cond, gen(7))[0], D(a, cond, gen(7))[0])
    assert not torch.equal(D(a, cond, gen(7))[0], D(a, cond, gen(8))[0])  # dropout masks differ
    assert torch.equal(torch.get_rng_state(), state)
    # without a generator (the training loop, which swaps in the run's state): torch's global stream
    torch.manual_seed(3)
    c, dc = G(z, cond), D(a, cond)[0]
    torch.manual_seed(3)
    torch.testing.assert_close(G(z, cond), c)
    torch.testing.assert_close(D(a, cond)[0], dc)
    assert torch.equal(G.last_raw, G.raw(z, cond))


def test_discriminator_reads_rows_packed_by_the_loop():
    from ganforge.models.layers import pack

    D = TableDiscriminator(data_dim=3, cond_dim=2, pac=4, hidden=(16,)).eval()
    x, cond = torch.randn(12, 3, generator=gen(0)), torch.randn(12, 2, generator=gen(1))
    torch.testing.assert_close(D(pack(x, 4), cond)[0], D(x, cond)[0])


def test_discriminator_scores_pac_groups():
    D = TableDiscriminator(data_dim=3, cond_dim=2, pac=4, hidden=(16,)).eval()  # eval: no dropout, no generator
    x, cond = torch.randn(12, 3, generator=gen(0)), torch.zeros(12, 2)
    out, aux = D(x, cond)
    assert out.shape == (3,) and aux is None and D.layers[0].in_features == (3 + 2) * 4
    x2 = x.clone()
    x2[5] += 1.0  # row 5 is in the second group of four
    changed = D(x2, cond)[0] != out
    assert changed.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="batch 10 is not a multiple of pac=4"):
        D(x[:10], cond[:10])


# --------------------------------------------------------------------------------------------------
# Training-by-sampling


def sampler_table() -> pd.DataFrame:
    """c: 60 'a', 30 'b', 10 'z'; d: alternating yes/no; v: numbers."""
    return pd.DataFrame({
        "c": ["a"] * 60 + ["b"] * 30 + ["z"] * 10,
        "d": ["yes", "no"] * 50,
        "v": np.linspace(0.0, 1.0, 100),
    })


def fitted(df: pd.DataFrame) -> tuple[TableTransform, np.ndarray]:
    t = TableTransform().fit(df, infer_kinds(df, {"v": "continuous"}), seed=0)
    return t, t.transform(df, seed=0)


def test_sampler_draws_consistent_rows_with_log_frequency():
    t, m = fitted(sampler_table())
    s = ConditionSampler(t, m)
    assert [sp.column for sp in s.spans] == ["c", "d"] and s.cond_dim == 5
    cb = s.sample(50_000, gen(0))
    assert cb.cond.shape == (50_000, 5) and cb.mask.shape == (50_000, 2)
    torch.testing.assert_close(cb.cond.sum(1), torch.ones(50_000))
    torch.testing.assert_close(cb.mask, F.one_hot(cb.span, 2).float())
    offsets = torch.tensor([0, 3])
    assert torch.equal(cb.cond.argmax(1), offsets[cb.span] + cb.value)
    # the real row holds the chosen value in the chosen span
    for k, sp in enumerate(s.spans):
        rows = cb.span == k
        got = torch.from_numpy(m[cb.real_idx[rows].numpy(), sp.start : sp.start + sp.width].argmax(1))
        assert torch.equal(got, cb.value[rows])
    assert (cb.span == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    logf = np.log(np.array([60, 30, 10]) + 1.0)
    share = torch.bincount(cb.value[cb.span == 0], minlength=3).float() / (cb.span == 0).sum()
    np.testing.assert_allclose(share.numpy(), logf / logf.sum(), atol=0.01)
    # rows are uniform among those holding the value: the 10 'z' rows (90..99) each get about a tenth
    z_rows = cb.real_idx[(cb.span == 0) & (cb.value == 2)]
    assert set(z_rows.tolist()) == set(range(90, 100))
    assert torch.bincount(z_rows - 90).min().item() > 0.07 * len(z_rows)


def test_sampler_original_frequency_and_fixed_condition():
    t, m = fitted(sampler_table())
    s = ConditionSampler(t, m, log_frequency=False)
    cond = s.sample_original(60_000, gen(1))
    c_rows = cond[:, :3].sum(1) == 1
    np.testing.assert_allclose((cond[c_rows, :3].mean(0)).numpy(), [0.6, 0.3, 0.1], atol=0.01)
    torch.testing.assert_close(s.sample_cond_for("c", "b", batch=2), torch.tensor([[0.0, 1, 0, 0, 0]] * 2))
    torch.testing.assert_close(s.sample_cond_for("d", "yes"), torch.tensor([[0.0, 0, 0, 0, 1]]))
    with pytest.raises(ConfigError, match="column 'c' has no value 'q'; its values are a, b, z"):
        s.sample_cond_for("c", "q")
    with pytest.raises(ConfigError, match="column 'v' is continuous, not categorical"):
        s.sample_cond_for("v", 0.5)
    with pytest.raises(ConfigError, match="no column named 'w'"):
        s.sample_cond_for("w", 1)


def test_sampler_modes_and_no_condition():
    t, m = fitted(sampler_table())
    with_modes = ConditionSampler(t, m, modes=True)
    assert [sp.role for sp in with_modes.spans] == ["category", "category", "mode"]
    cb = with_modes.sample(2_000, gen(0))
    sp = with_modes.spans[2]
    rows = cb.span == 2
    got = m[cb.real_idx[rows].numpy(), sp.start : sp.start + sp.width].argmax(1)
    np.testing.assert_array_equal(got, cb.value[rows].numpy())

    only_numbers = pd.DataFrame({"v": np.linspace(0, 1, 50)})
    t, m = fitted(only_numbers)
    s = ConditionSampler(t, m)
    cb = s.sample(8, gen(0))
    assert s.cond_dim == 0 and cb.cond.shape == (8, 0) and cb.real_idx.max() < 50
    assert s.cond_loss(torch.randn(8, t.dim), cb.cond, cb.mask).item() == 0.0


def test_cond_loss_is_masked_cross_entropy():
    t, m = fitted(sampler_table())
    s = ConditionSampler(t, m)
    logits = torch.randn(4, t.dim, generator=gen(3))
    cond = torch.tensor([[0.0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]])
    mask = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    c, d = s.spans
    want = (F.cross_entropy(logits[:2, c.start : c.start + 3], torch.tensor([1, 2]), reduction="sum")
            + F.cross_entropy(logits[2:, d.start : d.start + 2], torch.tensor([0, 1]), reduction="sum")) / 4
    torch.testing.assert_close(s.cond_loss(logits, cond, mask), want)


# --------------------------------------------------------------------------------------------------
# The pieces together: a tiny CTGAN-style run


def bimodal_table(n: int, seed: int) -> pd.DataFrame:
    """x: two modes (-3 and 3); c mostly 'a' on the left mode and 'b' on the right, 5% 'r'; k an integer."""
    rng = np.random.default_rng(seed)
    left = rng.random(n) < 0.6
    x = np.where(left, rng.normal(-3, 0.5, n), rng.normal(3, 0.5, n)).round(3)
    c = np.where(rng.random(n) < 0.9, np.where(left, "a", "b"), np.where(left, "b", "a"))
    c[rng.random(n) < 0.05] = "r"
    return pd.DataFrame({"x": x, "c": c, "k": rng.integers(0, 50, n) + (~left) * 50})


def test_tiny_ctgan_beats_noise_and_inverts_to_valid_rows():
    torch.manual_seed(0)  # module initialisation only; every draw below comes from `g`
    df = bimodal_table(2000, seed=0)
    kinds = infer_kinds(df)
    assert kinds == {"x": "continuous", "c": "categorical", "k": "integer"}
    transform = TableTransform().fit(df, kinds, seed=0)
    data = torch.from_numpy(transform.transform(df, seed=0))  # (N, D)
    sampler = ConditionSampler(transform, data.numpy())
    g = gen(0)
    z_dim, batch, pac = 16, 100, 10
    G = TableGenerator(z_dim, sampler.cond_dim, transform.spans, hidden=(64, 64))
    D = TableDiscriminator(transform.dim, sampler.cond_dim, pac=pac, hidden=(64, 64))
    opt_g = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.9))
    for _ in range(200):
        # D: real rows drawn to match the condition vectors, paired in a shuffled order as CTGAN does
        cb = sampler.sample(batch, g)
        fake = G(torch.randn(batch, z_dim, generator=g), cb.cond, g)
        perm = torch.randperm(batch, generator=g)
        real, real_cond = data[cb.real_idx[perm]], cb.cond[perm]
        loss_d = F.softplus(D(fake.detach(), cb.cond, g)[0]).mean() + F.softplus(-D(real, real_cond, g)[0]).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # G: non-saturating loss plus the cross-entropy that makes it honour the condition
        cb = sampler.sample(batch, g)
        raw = G.raw(torch.randn(batch, z_dim, generator=g), cb.cond)
        y = D(G.activate(raw, g, hard=False), cb.cond, g)[0]
        loss_g = F.softplus(-y).mean() + sampler.cond_loss(raw, cb.cond, cb.mask)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    G.eval()
    n = 2000
    with torch.no_grad():
        rows = G(torch.randn(n, z_dim, generator=g), sampler.sample_original(n, g), g)
        only_r = G(torch.randn(n, z_dim, generator=g), sampler.sample_cond_for("c", "r", n), g)
    synth = transform.inverse(rows.numpy())
    assert list(synth.columns) == ["x", "c", "k"]
    assert synth.dtypes.astype(str).tolist() == df.dtypes.astype(str).tolist()
    assert set(synth["c"]) <= {"a", "b", "r"}
    assert df["x"].min() <= synth["x"].min() and synth["x"].max() <= df["x"].max()
    assert (synth["x"] == synth["x"].round(3)).all()
    assert (transform.inverse(only_r.numpy())["c"] == "r").mean() > 2 * (synth["c"] == "r").mean()

    test = bimodal_table(2000, seed=1)
    rng = np.random.default_rng(0)
    noise = pd.DataFrame({"x": rng.uniform(df["x"].min(), df["x"].max(), n), "c": rng.choice(["a", "b", "r"], n),
                          "k": rng.integers(0, 100, n)})
    gan, base = quality_report(test, synth, kinds), quality_report(test, noise, kinds)
    assert gan["overall"] > base["overall"] + 0.05, (gan["overall"], base["overall"])
    assert gan["columns"]["x"]["score"] > base["columns"]["x"]["score"]
