"""Streamed and in-memory batches: the same batches for the same seed, and exact resume on both paths."""

from __future__ import annotations

import pytest
import torch

from ganforge import config, rng, train
from ganforge.data import IndexSampler, load_dataset
from ganforge.data.batches import InMemoryBatches, StreamedBatches, xflip
from tests.imagefolders import write_digit_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_digit_folder(tmp_path_factory.mktemp("d"), n_per_class=8, jpeg_share=0.0, corrupt=0, rgba=0)


def _data(folder, tmp_path, streamed: bool):
    sets = {"path": str(folder.root), "cache": str(tmp_path / "cache"), "labels": "folders",
            "max_memory": 1e-9 if streamed else 2.0}
    return load_dataset(config.from_dict({"data": sets}).data)


def test_streamed_and_in_memory_batches_are_identical(folder, tmp_path):
    mem, disk = _data(folder, tmp_path, False), _data(folder, tmp_path, True)
    assert not mem.streamed and disk.streamed
    a = InMemoryBatches(mem, IndexSampler(len(mem), 12, seed=3), rng.RunRandom(3), flip=True)
    b = StreamedBatches(disk, IndexSampler(len(disk), 12, seed=3), rng.RunRandom(3), flip=True, workers=2)
    try:
        for _ in range(15):  # into the third epoch of 80 examples
            (xa, ya), (xb, yb) = a.next(), b.next()
            torch.testing.assert_close(xa, xb, rtol=0, atol=0)
            assert torch.equal(ya, yb)
        assert a.state() == b.state() == {"epoch": 2, "cursor": 36}  # 6 batches per epoch
    finally:
        b.close()


def test_xflip_mirrors_only_the_chosen_images():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    out = xflip(x, torch.tensor([True, False]))
    torch.testing.assert_close(out[0], x[0].flip(2))
    torch.testing.assert_close(out[1], x[1])


def test_streamed_training_resumes_bit_exactly(folder, tmp_path):
    sets = ['model.z_dim=8', 'model.g.hidden=[16]', 'model.d.hidden=[16]', "train.batch_size=16",
            'train.progress="none"', "train.tensorboard=false", "train.sample_every=7", "train.ckpt_every=0",
            f'data.path="{folder.root}"', f'data.cache="{tmp_path / "cache"}"', "data.max_memory=1e-9",
            "train.xflip=true"]
    base = config.apply_overrides(config.Config(), sets)
    full = train.train(config.apply_overrides(base, ["train.steps=20", f'train.out="{tmp_path / "full"}"']))
    assert full.data.streamed
    train.train(config.apply_overrides(base, ["train.steps=10", f'train.out="{tmp_path / "half"}"']))
    resumed = train.train(run=train.resume(tmp_path / "half", ["train.steps=20"]))
    for a, b in zip(full.G.state_dict().values(), resumed.G.state_dict().values(), strict=True):
        assert torch.equal(a, b)
