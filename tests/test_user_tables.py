"""End to end on the user's own table: train, sample (CSV, --where), eval, resume, export, the Python API and
every bad input as one line, through the command line as a user would.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import ganforge
from ganforge import checkpoint, config
from ganforge.cli import main
from tests.cutruns import assert_resume_is_bit_exact

TINY_TABLE = ["model.z_dim=16", "model.g.hidden=[32, 32]", "model.d.hidden=[32, 32]", "train.batch_size=100",
              "train.log_every=5", "train.sample_every=10", "train.ckpt_every=10", 'train.progress="none"',
              "train.tensorboard=false", "train.epochs=0"]


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def customers(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A mixed table: a bimodal float, text categories (one rare), an integer, a boolean, a float with gaps."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["west", "east", "north"], n, p=[0.6, 0.35, 0.05])
    spend = np.where(region == "west", rng.normal(100, 5, n), rng.normal(20, 2, n)).round(2)
    income = np.where(rng.random(n) < 0.1, np.nan, rng.normal(50, 10, n).round(1))
    return pd.DataFrame({"spend": spend, "region": region, "age": rng.integers(18, 90, n),
                         "member": rng.random(n) < 0.3, "income": income})


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    csv = folder / "customers.csv"
    customers().to_csv(csv, index=False)
    out = folder / "run"
    argv = ["train", "--data", str(csv), "--preset", "table", "--steps", "20", "--out", str(out),
            *_sets(TINY_TABLE + ['data.target="spend"'])]
    assert main(argv) == 0
    return csv, out


def test_train_sample_eval_through_the_cli(table_run, tmp_path, capsys):
    csv, out = table_run
    assert sorted(p.name for p in (out / "samples").glob("step_*.png")) == ["step_000010.png", "step_000020.png"]
    s = ganforge.load(out)
    assert s.family.name == "tables" and s.data_source["path"] == str(csv)

    # the written CSV reads back with the input's columns, dtypes and category sets
    synth = tmp_path / "synthetic.csv"
    assert main(["sample", str(out), "-n", "500", "--out", str(synth)]) == 0
    real, back = pd.read_csv(csv), pd.read_csv(synth)
    assert len(back) == 500 and list(back.columns) == list(real.columns)
    assert back.dtypes.astype(str).tolist() == real.dtypes.astype(str).tolist()
    assert set(back["region"]) <= set(real["region"]) and set(back["member"]) <= {True, False}
    assert real["age"].min() <= back["age"].min() and back["age"].max() <= real["age"].max()

    # --where: every row has the value; G is conditioned on it, so most rows drawn already do
    west = tmp_path / "west.csv"
    assert main(["sample", str(out), "-n", "200", "--where", "region=north", "--out", str(west)]) == 0
    rows = pd.read_csv(west)
    assert len(rows) == 200 and set(rows["region"]) == {"north"}

    capsys.readouterr()
    assert main(["eval", str(out), "-n", "400"]) == 0
    printed = capsys.readouterr().out
    for key in ("quality", "column_shapes", "column_pair_trends", "ml_efficacy", "ml_efficacy_real",
                "dcr_share_closer", "exact_copies"):
        assert f"\n{key} " in printed
    result = json.loads((out / "eval" / "step_000020.json").read_text())
    assert 0 <= result["metrics"]["quality"] <= 1 and result["provenance"]["data_family"] == "tables"
    assert set(result["metrics"]["quality_columns"]) == set(real.columns)

    # a file of rows made elsewhere, measured against the run's data
    assert main(["eval", str(out), "--samples", str(synth), "-n", "500", "--metrics", "quality"]) == 0
    from_file = json.loads((out / "eval" / "samples_synthetic.json").read_text())
    assert from_file["metrics"]["quality"] == pytest.approx(result["metrics"]["quality"], abs=0.1)
    assert from_file["provenance"]["samples_file"] == str(synth)


def test_python_api_with_a_dataframe(tmp_path):
    cfg = config.apply_overrides(config.load_preset("table"), TINY_TABLE + [
        "train.steps=10", f'train.out="{tmp_path / "run"}"'])
    df = customers(300, seed=1)
    run = ganforge.train(cfg, data=df)
    assert run.step == 10 and (tmp_path / "run" / "data.parquet").is_file()
    rows = ganforge.load(tmp_path / "run").sample(50, seed=0)
    assert isinstance(rows, pd.DataFrame) and list(rows.columns) == list(df.columns)
    assert rows.dtypes.tolist() == df.dtypes.tolist()
    assert rows.equals(ganforge.load(tmp_path / "run").sample(50, seed=0))  # seeded
    assert rows["income"].isna().any() or rows["income"].notna().all()  # missing values are a decoded value


def test_resume_is_bit_exact_and_export_samples_alike(table_run, tmp_path):
    csv, _ = table_run
    cut = assert_resume_is_bit_exact(["train", "--data", str(csv), "--preset", "table", *_sets(TINY_TABLE)], 14,
                                     tmp_path)
    assert main(["export", str(cut), "--out", str(tmp_path / "g.safetensors")]) == 0
    pd.testing.assert_frame_equal(ganforge.load(tmp_path / "g.safetensors").sample(40, seed=3),
                                  ganforge.load(cut).sample(40, seed=3))


def test_sampling_100k_rows_is_quick(table_run):
    import time

    s = ganforge.load(table_run[1])
    t = time.perf_counter()
    rows = s.sample(100_000, seed=0)
    assert len(rows) == 100_000 and time.perf_counter() - t < 10


@pytest.mark.parametrize("content, extra, message", [
    ("a,b\n,x\n,y\n,x\n", [], "column 'a' has no values (all missing); drop it"),
    ("a,b\n1,x\n", [], "has only 1 data row; a table needs at least 2"),
    ("a,b\n1.5,x\n2.5,y\n3.5,x\n", ["--set", 'data.columns.zz="categorical"'], "no column named 'zz'"),
    ("a,b\n1.5,x\n2.5,y\n3.5,x\n", ["--set", 'data.target="zz"'], "data.target: no column named 'zz'"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", [], "not a text table (binary content"),
])
def test_bad_tables_are_one_line(tmp_path, capsys, content, extra, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["train", "--data", str(path), "--preset", "table", "--steps", "2", "--out", str(tmp_path / "r"),
                 *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "r" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("where, message", [
    ("region=south", "column 'region' has no value 'south'; its values are east, north, west"),
    ("nope=1", "no column named 'nope'"),
    ("spend=3", "column 'spend' is continuous, not categorical"),
    ("region", "--where expects column=value, got 'region'"),
])
def test_bad_where_is_one_line(table_run, tmp_path, capsys, where, message):
    assert main(["sample", str(table_run[1]), "-n", "5", "--where", where, "--out", str(tmp_path / "w.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "w.csv").exists()


def test_options_of_other_families_are_refused(table_run, tmp_path, capsys):
    out = str(table_run[1])
    for argv, message in ((["--temperature", "0.5"], "--temperature is for text"),
                          (["--novel"], "--novel is for text"), (["--label", "1"], "--label: not an option")):
        assert main(["sample", out, "-n", "5", *argv, "--out", str(tmp_path / "x.csv")]) == 2
        assert message in capsys.readouterr().err
    assert main(["sample", out, "-n", "5", "--out", str(tmp_path / "x.png")]) == 2
    assert "tables samples are written as .csv or .tsv or .parquet" in capsys.readouterr().err
    assert main(["interpolate", out, "--out", str(tmp_path / "walk.gif")]) == 2
    assert "a walk is pictured for points and images only" in capsys.readouterr().err


def test_a_hostile_transform_is_refused_before_building(table_run, tmp_path, capsys):
    """An exported file whose saved transform claims a huge table must not make ganforge allocate G for it."""
    from safetensors import safe_open

    exported = tmp_path / "g.safetensors"
    assert main(["export", str(table_run[1]), "--out", str(exported)]) == 0
    with safe_open(str(exported), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    state = json.loads(meta["state"])
    column = next(c for c in state["family_state"]["transform"]["columns"] if c["kind"] == "categorical")
    column["categories"] = [f"v{i}" for i in range(2_000_000)]  # a 2-million-wide one-hot
    meta["state"] = json.dumps(state)
    meta.pop(checkpoint.DIGEST_KEY)  # a hostile author writes a matching digest: it checks integrity, not intent
    checkpoint.atomic_save(tensors, tmp_path / "hostile.safetensors", meta)
    assert main(["sample", str(tmp_path / "hostile.safetensors"), "-n", "5", "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "does not match the generator's weights" in err and err.count("\n") == 1


def test_a_table_smaller_than_the_batch_trains(tmp_path):
    """Rows are drawn with replacement to match their conditions (as CTGAN does): 40 rows, batch 100."""
    csv = tmp_path / "small.csv"
    customers(50, seed=3).to_csv(csv, index=False)
    assert main(["train", "--data", str(csv), "--preset", "table", "--steps", "3", "--out", str(tmp_path / "r"),
                 *_sets(TINY_TABLE)]) == 0
    assert len(ganforge.load(tmp_path / "r").sample(7, seed=0)) == 7
