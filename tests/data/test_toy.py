import math

import pytest
import torch

from ganforge.config import ConfigError
from ganforge.data import POINTS, IndexSampler, toy


def test_gaussian_1d_moments():
    ds = toy.gaussian_1d(100_000, mean=5.0, std=2.0, seed=3)
    assert ds.x.shape == (100_000, 1) and ds.family is POINTS
    assert abs(ds.x.mean().item() - 5.0) < 0.03 and abs(ds.x.std().item() - 2.0) < 0.03


def test_ring_and_grid_centres():
    ring = toy.ring_8(1000)
    assert ring.modes.shape == (8, 2)
    torch.testing.assert_close(ring.modes.norm(dim=1), torch.full((8,), 2.0))
    torch.testing.assert_close(ring.modes[2], torch.tensor([0.0, 2.0]), atol=1e-6, rtol=0)
    grid = toy.grid_25(1000)
    assert grid.modes.shape == (25, 2) and set(grid.modes[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    # every point lies within 5 std of its own centre
    dist = (grid.x - grid.modes[grid.y]).norm(dim=1)
    assert dist.max() < 5 * 0.05 * math.sqrt(2)


def test_spirals_two_arms():
    ds = toy.spirals(500)
    assert ds.x.shape == (500, 2) and set(ds.y.tolist()) == {0, 1}


def test_index_sampler_covers_each_epoch_once():
    s = IndexSampler(10, 3, seed=5)
    seen = torch.cat([s.next() for _ in range(3)])  # one epoch: 3 full batches, the last 1 dropped
    assert len(set(seen.tolist())) == 9
    s2 = IndexSampler(10, 3, seed=5)
    s2.load_state(s.state())
    torch.manual_seed(1)  # the global stream plays no part in the order
    a = s.next()
    torch.manual_seed(2)
    torch.testing.assert_close(a, s2.next())
    assert s.state() == {"epoch": 1, "cursor": 3}


def test_index_sampler_order_is_a_function_of_seed_and_epoch():
    a, b, c = IndexSampler(100, 10, seed=1), IndexSampler(100, 10, seed=1), IndexSampler(100, 10, seed=2)
    first = [a.next() for _ in range(25)]  # two and a half epochs
    assert all(torch.equal(x, b.next()) for x in first)
    assert not torch.equal(first[0], c.next())
    ahead = a.copy()  # look-ahead leaves the original where it was
    nxt = [ahead.next() for _ in range(3)]
    assert torch.equal(a.next(), nxt[0]) and a.state() == {"epoch": 2, "cursor": 60}


def test_index_sampler_batch_larger_than_data_is_a_config_error():
    with pytest.raises(ConfigError, match=r"train.batch_size \(11\) is larger than the dataset \(10 examples\)"):
        IndexSampler(10, 11)
