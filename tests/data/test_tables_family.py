"""The tables family's pieces: condition vectors at sampling time, batches of matched rows, G's condition loss,
options refused for tables, and what the doctor is told."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import torch

from ganforge import config, doctor, rng
from ganforge.data import TABLES
from ganforge.data.tables_family import TableConditions, parse_where
from tests.test_user_tables import TINY_TABLE, customers


def _data(holdout: float = 0.2, **columns):
    cfg = config.apply_overrides(config.load_preset("table"), [f"data.holdout={holdout}"] + [
        f'data.columns.{k}="{v}"' for k, v in columns.items()])
    return TABLES.load(customers(500), "customers", cfg.data, 0, {}, None), cfg


def test_load_splits_encodes_and_keeps_json_state():
    data, _ = _data()
    assert len(data) == 400 and len(data.extra["holdout"]) == 100  # the seeded 20% holdout is never trained on
    assert data.x.shape == (400, data.extra["transform"].dim) and data.shape == (data.extra["transform"].dim,)
    assert data.extra["kinds"] == {"spend": "continuous", "region": "categorical", "age": "integer",
                                   "member": "categorical", "income": "continuous"}
    # the counts of each conditioning column's values in the training split, as JSON
    train = data.extra["train"]
    region_counts = data.meta["cond_counts"][0]
    assert region_counts == [int((train["region"] == v).sum()) for v in ("east", "north", "west")]
    # a saved state is reused exactly (no refit), and an override of a kind is honoured
    again = TABLES.load(customers(500), "customers", _data()[1].data, 0, {}, data.meta)
    assert torch.equal(again.x, data.x)
    forced, _ = _data(age="categorical")
    assert forced.extra["kinds"]["age"] == "categorical" and len(forced.meta["cond_counts"]) == 3


def test_conditions_follow_training_frequencies_and_fix_values():
    data, _ = _data(holdout=0.0)
    conds = TableConditions(data.extra["transform"], data.meta["cond_counts"])
    c = conds.original(20_000, torch.Generator().manual_seed(0))  # (n, cond_dim) one-hots
    assert c.shape == (20_000, conds.dim) and torch.equal(c.sum(1), torch.ones(20_000))
    region = c[:, :3]  # region's block: rows conditioned on region follow its frequencies
    share = region[region.sum(1) == 1].mean(0)
    real = torch.tensor(data.meta["cond_counts"][0], dtype=torch.float) / 500
    torch.testing.assert_close(share, real, atol=0.02, rtol=0)
    fixed = conds.fixed("region", "north", 4)
    assert fixed.argmax(1).tolist() == [1] * 4 and fixed.sum().item() == 4


def test_batches_pair_rows_with_their_condition_and_g_loss_reads_raw_outputs():
    data, cfg = _data()
    streams = rng.RunRandom(0)
    batches = TABLES.batches(data, None, streams, cfg, torch.device("cpu"))
    rows, cond = batches.next()
    assert rows.shape == (cfg.train.batch_size, data.x.shape[1])
    transform = data.extra["transform"]
    # each real row holds the value its condition vector names
    for span, start in zip(batches.cond.spans, batches.cond._starts, strict=True):
        chosen = cond[:, start : start + span.width]
        on = chosen.sum(1) == 1
        held = rows[on, span.start : span.start + span.width].argmax(1)
        assert torch.equal(held, chosen[on].argmax(1))
    G = TABLES.generator(cfg.model, data.shape, 0, data.meta)

    class FakeRun:
        pass

    run = FakeRun()
    run.G, run.data = G, data
    G(torch.randn(len(cond), cfg.model.z_dim), cond)
    expected = batches.cond.cond_loss(G.last_raw, cond, None)
    assert TABLES.g_loss(run, cond).item() == pytest.approx(expected.item()) and expected.item() > 0
    assert transform.dim == G.data_dim


def test_options_that_cannot_apply_to_tables_are_refused():
    data, cfg = _data()
    for items, message in ((["model.d.spectral_norm=true"], "spectral_norm and minibatch layers"),
                           (['model.g.arch="mlp"'], "model.g.arch: 'mlp' cannot make tables data")):
        with pytest.raises(config.ConfigError, match=message):
            TABLES.check_config(config.apply_overrides(cfg, items), data)
    labelled = config.apply_overrides(cfg, ["model.pack=1", 'model.conditional="acgan"'])
    with pytest.raises(config.ConfigError, match="tables condition G on their categorical columns themselves"):
        TABLES.check_config(labelled, data)


def test_parse_where():
    assert parse_where(["a=1", " b = x y "]) == {"a": "1", "b": "x y"}
    for bad in ("a", "=3"):
        with pytest.raises(config.ConfigError, match="--where expects column=value"):
            parse_where([bad])


def test_the_doctor_says_each_sample_warning_once():
    records = [{"step": 10, "sample_warnings": ["region: G never makes 'north'"]},
               {"step": 20, "sample_warnings": ["region: G never makes 'north'", "spend collapsed"]}]
    found = doctor.check_samples(records, None)
    assert [(f.step, f.message) for f in found] == [(10, "region: G never makes 'north'"), (20, "spend collapsed")]
    assert doctor.diagnose(records)[-1].check == "samples"


def test_written_tables_and_suffixes(tmp_path):
    df = customers(20)
    assert TABLES.write_samples(df, tmp_path / "a.tsv") == f"20 rows to {tmp_path / 'a.tsv'}"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.tsv", sep="\t"), pd.read_csv(io.StringIO(df.to_csv(
        index=False))))
    with pytest.raises(config.ConfigError, match="tables samples are written as .csv or .tsv or .parquet"):
        TABLES.write_samples(df, tmp_path / "a.npy")


def test_tiny_run_config_is_valid():
    config.apply_overrides(config.load_preset("table"), TINY_TABLE)
