"""The text family's pieces: loading (vocabulary of the lines kept, max_len, holdout, saved state), one-hot
batches, decoding at a temperature, --novel, and the options refused for text."""

from __future__ import annotations

import pytest
import torch

from ganforge import config, rng
from ganforge.data import TEXT, IndexSampler
from ganforge.data.text_family import drop_copies
from ganforge.sampling import Sampler


def _cfg(*items: str) -> config.Config:
    return config.apply_overrides(config.load_preset("text"), list(items))


LINES = ["ab", "abc", "b", "ca", "cab", "zzzzzzzzzzzzzzzzzzzz", "bb", "ac", "ba", "cc"]


def test_load_keeps_the_alphabet_of_kept_lines_and_splits():
    data = TEXT.load(LINES, "t", _cfg("data.max_len=3", "data.holdout=0.2").data, 0, {}, None)
    vocab = data.extra["vocab"]
    assert vocab.itos == ["<end>", "a", "b", "c"]  # the dropped 20-z line adds no 'z'
    assert data.shape == (3, 4) and data.x.dtype == torch.int64
    assert len(data.extra["train_lines"]) == 7 and len(data.extra["holdout_lines"]) == 2
    assert sorted(data.extra["train_lines"] + data.extra["holdout_lines"]) == sorted(
        line for line in LINES if len(line) <= 3)
    assert vocab.decode(data.x) == data.extra["train_lines"]
    # the saved vocabulary and max_len are reused, so a resumed run reads the same indices
    again = TEXT.load(LINES, "t", _cfg("data.holdout=0.2").data, 0, {}, data.meta)
    assert torch.equal(again.x, data.x) and again.shape == (3, 4)


def test_batches_are_one_hot_rows():
    data = TEXT.load(LINES, "t", _cfg("data.max_len=3", "data.holdout=0").data, 0, {}, None)
    sampler = IndexSampler(len(data), 4, seed=0)
    x, y = TEXT.batches(data, sampler, rng.RunRandom(0), None, torch.device("cpu")).next()
    assert x.shape == (4, 3, 4) and y is None
    torch.testing.assert_close(x.sum(-1), torch.ones(4, 3))
    assert data.extra["vocab"].decode(x.argmax(-1))[0] in data.extra["train_lines"]


def test_generate_decodes_argmax_or_at_a_temperature():
    data = TEXT.load(LINES, "t", _cfg("data.max_len=3", "data.holdout=0").data, 0, {}, None)

    class Fixed(torch.nn.Module):  # always p = [end .1, a .6, b .2, c .1] at every position
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z, y=None):
            p = torch.tensor([0.1, 0.6, 0.2, 0.1])
            return p.expand(len(z), 3, 4) + 0 * self.w

    s = Sampler(Fixed(), _cfg("model.z_dim=4"), TEXT, 0, False, data_shape=(3, 4), family_state=data.meta)
    assert s.sample(5, seed=0) == ["aaa"] * 5
    hot = s.sample(4000, seed=0, temperature=1.0)
    letters = "".join(hot)
    assert letters.count("a") / len(letters) == pytest.approx(0.6 / 0.9, abs=0.03)  # end stops a line: no '<end>'
    cold = "".join(s.sample(4000, seed=0, temperature=0.5))
    assert cold.count("a") / len(cold) > letters.count("a") / len(letters)  # p^(1/T) sharpens
    assert s.sample(50, seed=3, temperature=0.8) == s.sample(50, seed=3, temperature=0.8)
    with pytest.raises(config.ConfigError, match="where: not an option for text samples"):
        s.sample(2, where={"a": "b"})


def test_novel_drops_training_lines():
    assert drop_copies(["ab", "zz", "b", "q"], ["ab", "b"]) == (["zz", "q"], 2)


def test_options_that_cannot_apply_to_text_are_refused():
    data = TEXT.load(LINES, "t", _cfg("data.max_len=3").data, 0, {}, None)
    with pytest.raises(config.ConfigError, match="packing is for flat rows"):
        TEXT.check_config(_cfg("model.pack=2"), data)
    with pytest.raises(config.ConfigError, match="model.g.arch: 'dcgan' cannot make text data"):
        TEXT.check_config(_cfg('model.g.arch="dcgan"'), data)
    with pytest.raises(config.ConfigError, match="1 line to learn from; a holdout needs at least 2"):
        TEXT.load(["abc"], "t", _cfg().data, 0, {}, None)
