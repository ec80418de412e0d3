"""Data-parallel training: 2 gloo processes on CPU compute what 1 process computes, resume across world sizes,
and only rank 0 writes. The 2-process runs are spawned once for the module (torch.multiprocessing)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.testing import assert_close

from ganforge import checkpoint, config, distributed, rng, train
from ganforge.config import ConfigError
from ganforge.outputs import RunOutput
from ganforge.regularizers import mix_weights
from ganforge.runlock import RunLock

QUIET = ['train.progress="none"', "train.tensorboard=false", "train.doctor=false", "train.animation=false"]
MLP = QUIET + ['data.name="gaussian-1d"', "data.n=800", "model.z_dim=4", "model.g.hidden=[16]",
               "model.d.hidden=[16]", "train.batch_size=32", "train.log_every=10", "train.sample_every=25",
               "train.ckpt_every=25", "train.hist_samples=200"]
ACGAN = QUIET + ['data.name="mnist-5k"', "data.limit=200", "model.z_dim=8", "model.g.hidden=[16]",
                 "model.d.hidden=[16]", 'model.conditional="acgan"', "loss.aux_fake=true", "train.batch_size=20",
                 "train.steps=20", "train.log_every=5", "train.sample_every=0", "train.ckpt_every=0"]
R1 = MLP + ['loss.regularizer="r1"', "loss.gamma=1.0", "loss.reg_every=2", "train.steps=20"]  # lazy R1
WGAN_GP = MLP + ['loss.name="wgan"', 'loss.regularizer="wgan-gp"', "train.d_steps=2", "train.steps=20"]
TEXT_RNN = QUIET + ["model.z_dim=8", 'model.g.arch="textrnn"', "model.g.channels=16", "model.g.blocks=1",
                    'model.d.arch="textcnn"', "model.d.channels=16", "model.d.blocks=1", 'loss.name="wgan"',
                    'loss.regularizer="wgan-gp"', "loss.mle_weight=0.5", "train.mle_steps=8", "train.steps=20",
                    "train.batch_size=32", "train.log_every=5", "train.sample_every=0", "train.ckpt_every=0"]
TABLE = QUIET + ["model.z_dim=8", 'model.g.arch="ctgan"', "model.g.hidden=[16]", 'model.d.arch="ctgan"',
                 "model.d.hidden=[16]", "model.pack=2", 'loss.name="wgan"', 'loss.regularizer="wgan-gp"',
                 "train.steps=12", "train.batch_size=40", "train.log_every=4", "train.sample_every=0",
                 "train.ckpt_every=0"]  # CTGAN's G normalises each rank's half of the batch: ranks in step only
BN_DROPOUT = MLP + ['model.g.norm="batch"', "model.d.dropout=0.3", "model.ema=0.9", "train.steps=20"]  # per rank
N = 10  # steps before and after a resume
TOL = 1e-5


def _cfg(overrides: list[str], out: Path) -> config.Config:
    return config.apply_overrides(config.Config(), overrides + [f'train.out="{out}"'])


def _train(run: train.Run) -> None:
    """What `train()` does for the run's rank: rank 0 locks the folder and writes, the others write nothing."""
    with contextlib.ExitStack() as stack:
        output = None
        if run.par.main:
            stack.enter_context(RunLock(run.out))
            output = RunOutput(run, "none")
        train.train(run=run, output=distributed.output_for(run, output))


def _job(job: dict) -> None:
    if job["resume"]:
        run = train.resume(job["out"], job["overrides"])
    else:
        run = train.build(_cfg(job["overrides"], job["out"]))
    assert (run.par.world, run.rng.world, run.batches.rng.world) == (2, 2, 2)
    assert isinstance(run.par.G, DistributedDataParallel) and run.par.G.module is run.G
    _train(run)
    # every rank ends with rank 0's weights, bit for bit (DDP hands every rank the same averaged gradients)
    for p in [*run.G.parameters(), *run.D.parameters()]:
        theirs = p.detach().clone()
        torch.distributed.broadcast(theirs, 0)
        assert torch.equal(theirs, p.detach()), "the ranks' weights drifted apart"


def _worker(rank: int, port: int, jobs: list[dict]) -> None:
    os.environ |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": str(port),
                   "TORCHELASTIC_USE_AGENT_STORE": "True"}
    torch.set_num_threads(1)
    for job in jobs:
        _job(job)
    distributed.cleanup()


def _agent_store() -> torch.distributed.TCPStore:
    """The rendezvous store, held by this parent process as torchrun's agent holds it (the workers connect as
    clients: TORCHELASTIC_USE_AGENT_STORE), on a port the system chose: no race for a free port."""
    return torch.distributed.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)


def _one(overrides: list[str], out: Path) -> Path:
    return train.train(_cfg(overrides, out)).out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """1-process reference runs here; every 2-process run in one spawn of two gloo processes."""
    root = tmp_path_factory.mktemp("ddp")
    torch.set_num_threads(1)
    lines = root / "lines.txt"  # made-up names: three letters of one word, two of another
    words = ["anna", "bob", "carla", "dora", "emil", "fritz", "greta", "hugo"]
    lines.write_text("".join(f"{a[:3]}{b[-2:]}\n" for a in words for b in words))
    text_rnn = TEXT_RNN + [f'data.path="{lines}"']
    table = root / "rows.csv"  # a numeric and a categorical column that depend on each other
    g = torch.Generator().manual_seed(0)
    kind = torch.randint(3, (300,), generator=g)
    table.write_text("size,kind\n" + "".join(f"{float(k) * 2 + torch.randn(1, generator=g).item():.3f},k{k}\n"
                                                for k in kind.tolist()))
    table_cfg = TABLE + [f'data.path="{table}"']
    one = {
        "mlp": _one(MLP + ["train.steps=50"], root / "mlp-1"),
        "acgan": _one(ACGAN, root / "acgan-1"),
        "r1": _one(R1, root / "r1-1"),
        "wgan-gp": _one(WGAN_GP, root / "wgan-gp-1"),
        "textrnn": _one(text_rnn, root / "textrnn-1"),
        "2n": _one(MLP + [f"train.steps={2 * N}"], root / "2n-1"),
        "n-then-2": _one(MLP + [f"train.steps={N}"], root / "n-then-2"),  # resumed below by 2 processes
    }
    two = {name: root / f"{name}-2" for name in ("mlp", "acgan", "r1", "wgan-gp", "textrnn", "n-then-1",
                                                      "bn-dropout", "table")}
    jobs = [{"resume": False, "out": str(two["mlp"]), "overrides": MLP + ["train.steps=50"]},
            {"resume": False, "out": str(two["acgan"]), "overrides": ACGAN},
            {"resume": False, "out": str(two["r1"]), "overrides": R1},
            {"resume": False, "out": str(two["wgan-gp"]), "overrides": WGAN_GP},
            {"resume": False, "out": str(two["textrnn"]), "overrides": text_rnn},
            {"resume": False, "out": str(two["n-then-1"]), "overrides": MLP + [f"train.steps={N}"]},
            {"resume": False, "out": str(two["bn-dropout"]), "overrides": BN_DROPOUT},
            {"resume": False, "out": str(two["table"]), "overrides": table_cfg},
            {"resume": True, "out": str(one["n-then-2"]), "overrides": [f"train.steps={2 * N}"]}]
    store = _agent_store()  # kept alive while the workers run
    mp.spawn(_worker, args=(store.port, jobs), nprocs=2, join=True)
    # written by 2 processes, resumed by 1
    resumed = train.resume(two["n-then-1"], [f"train.steps={2 * N}"])
    assert (resumed.step, resumed.par.world) == (N, 1)
    train.train(run=resumed)
    return {f"{k}-1": v for k, v in one.items()} | {f"{k}-2": v for k, v in two.items()}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    tensors, _ = checkpoint.load(run_dir / train.CHECKPOINT)
    return {k: v for k, v in tensors.items() if k.startswith(("g.", "d."))}


def max_weight_diff(a: Path, b: Path) -> float:
    """The largest |difference| of any G or D weight between two runs' checkpoints (same names required)."""
    wa, wb = _weights(a), _weights(b)
    assert set(wa) == set(wb)
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_compute_the_one_process_run(runs):
    """(a) MLP without batch norm or dropout, global batch 32 = 2 x 16, 50 steps: the same G and D."""
    diff = max_weight_diff(runs["mlp-1"], runs["mlp-2"])
    print(f"mlp, 50 steps: max |G, D weight difference| 2 vs 1 processes = {diff:.3g}")  # pytest -s shows it
    assert diff < TOL  # equal up to the order of float sums (DDP averages the two halves' gradients)
    tensors, state = checkpoint.load(runs["mlp-2"] / train.CHECKPOINT)
    assert state["step"] == 50 and state["config"]["train"]["batch_size"] == 32
    assert "rng.global.0" in tensors and "rng.global.1" not in tensors  # written by rank 0


def test_logged_losses_and_d_outputs_are_averaged_over_the_processes(runs):
    """Each rank's loss is the mean over its half; their average, logged by rank 0, is the global batch's."""
    one, two = _records(runs["mlp-1"]), _records(runs["mlp-2"])
    logs = [(a, b) for a, b in zip(one, two, strict=True) if "loss_d" in a]
    assert [a["step"] for a, _ in logs] == [10, 20, 30, 40, 50]
    for a, b in logs:
        for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key


def test_resume_with_another_number_of_processes(runs):
    """(b) N steps with 2 processes then N with 1, and N with 1 then N with 2, both equal 2N steps in one."""
    for name in ("n-then-1-2", "n-then-2-1"):
        diff = max_weight_diff(runs["2n-1"], runs[name])
        print(f"{name}: max |weight difference| to {2 * N} steps in one process = {diff:.3g}")
        assert diff < TOL
    for name in ("n-then-1-2", "n-then-2-1"):
        steps = [r["step"] for r in _records(runs[name]) if "loss_d" in r]
        assert steps == [10, 20]  # each log step once, whoever wrote it


@pytest.mark.parametrize("name", ["acgan", "r1", "wgan-gp", "textrnn"])
def test_class_head_and_gradient_penalties_under_ddp(runs, name):
    """(c) AC-GAN (the class head comes back from D's one forward), lazy R1 (double backward through DDP(D)),
    WGAN-GP (mixing weights drawn for the global batch) and text's LSTM G (its likelihood through DDP(G), alone,
    then beside D's loss in one backward) train as in one process."""
    diff = max_weight_diff(runs[f"{name}-1"], runs[f"{name}-2"])
    print(f"{name}, 20 steps: max |G, D weight difference| 2 vs 1 processes = {diff:.3g}")
    assert diff < TOL
    assert _weights(runs[f"{name}-2"]).keys() == _weights(runs[f"{name}-1"]).keys()
    last = [r for r in _records(runs[f"{name}-2"]) if "loss_d" in r][-1]
    assert last["step"] == 20 and last["loss_d"] == pytest.approx(
        [r for r in _records(runs[f"{name}-1"]) if "loss_d" in r][-1]["loss_d"], rel=1e-4)


def test_batch_norm_and_dropout_train_per_rank(runs):
    """Batch norm over each rank's half and per-rank dropout masks: not the 1-process numbers, but a run whose
    ranks stay in step (checked in each worker) and whose checkpoint holds G, D and G_ema."""
    tensors, state = checkpoint.load(runs["bn-dropout-2"] / train.CHECKPOINT)
    assert state["step"] == 20
    assert any(k.startswith("g.") and k.endswith("running_mean") for k in tensors)
    assert any(k.startswith("g_ema.") for k in tensors)
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point())


def test_a_table_trains_with_its_ranks_in_step(runs):
    """CTGAN's nets (BatchNorm in G, PacGAN-packed D, condition vectors drawn for the global batch) under two
    processes: the ranks' weights stay equal (checked in each worker), the run ends with its transform saved and
    samples decode to the table's columns."""
    import ganforge

    tensors, state = checkpoint.load(runs["table-2"] / train.CHECKPOINT)
    assert state["step"] == 12 and state["family"] == "tables" and state["family_state"]
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point())
    rows = ganforge.load(runs["table-2"]).sample(50, seed=0)
    assert list(rows.columns) == ["size", "kind"] and set(rows["kind"]) <= {"k0", "k1", "k2"}


def _listing(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def test_only_rank_0_writes(runs):
    """(d) The 2-process run folder holds exactly the files of the 1-process run, each written once."""
    one, two = runs["mlp-1"], runs["mlp-2"]
    assert _listing(two) == _listing(one)
    assert "checkpoint.safetensors" in _listing(two) and "samples/step_000050.png" in _listing(two)
    assert not (two / ".lock").exists()
    records = _records(two)  # every line parses: nothing interleaved
    assert len(records) == len(_records(one))
    keys = [(r["step"], tuple(sorted(r))) for r in records]
    assert len(keys) == len(set(keys))  # no record written twice
    saved = config.load_toml(two / "config.toml")
    assert saved.train.out == str(two) and config.to_dict(saved) == config.to_dict(config.apply_overrides(
        config.load_toml(one / "config.toml"), [f'train.out="{two}"']))


def test_mixing_weights_are_the_global_draw_sliced():
    one = rng.RunRandom(3)
    halves = [rng.RunRandom(3, rank=r, world=2) for r in (0, 1)]
    like = torch.zeros(())
    whole = mix_weights(8, one, like)
    assert_close(torch.cat([mix_weights(4, h, like) for h in halves]), whole, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------
# The environment torchrun sets, and what a process refuses


def _torchrun_env(monkeypatch, world: int = 2, rank: int = 1, local_rank: int = 1) -> None:
    for k, v in {"WORLD_SIZE": world, "RANK": rank, "LOCAL_RANK": local_rank}.items():
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("MASTER_ADDR", raising=False)


def test_joining_needs_the_rendezvous_address(monkeypatch, tiny_1d):
    _torchrun_env(monkeypatch)
    with pytest.raises(ConfigError, match=r"^MASTER_ADDR is not set: start the processes with torchrun"):
        train.build(tiny_1d)


def test_rank_and_world_come_from_torchrun_variables():
    assert distributed.from_env({}) == distributed.Parallel(0, 1, 0)
    assert distributed.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == distributed.Parallel(3, 4, 1)
    assert distributed.from_env({"WORLD_SIZE": "1", "RANK": "0"}) == distributed.Parallel(0, 1, 0)  # no group
    with pytest.raises(ConfigError, match=r"^RANK is not set: start the processes with torchrun"):
        distributed.from_env({"WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match=r"^RANK: 2 is not a rank of 2 processes \(0..1\)$"):
        distributed.from_env({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(ConfigError, match=r"^WORLD_SIZE: expected a whole number, got 'two'$"):
        distributed.from_env({"WORLD_SIZE": "two"})


def test_device_auto_is_cuda_local_rank_under_torchrun(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert train.resolve_device("auto", 1) == torch.device("cuda", 1)
    assert train.resolve_device("cuda", 0) == torch.device("cuda", 0)
    assert train.resolve_device("cpu", 1) == torch.device("cpu")
    assert train.resolve_device("auto") == torch.device("cuda")  # one process: as before
    with pytest.raises(ConfigError, match=r"^train.device: 'cuda:1' names one GPU for every process"):
        train.resolve_device("cuda:1", 0)
    with pytest.raises(ConfigError, match=r"^LOCAL_RANK 2: this machine has 2 CUDA devices"):
        train.resolve_device("auto", 2)
    with pytest.raises(ConfigError, match=r"^train.device: 'cuda:2' but this machine has 2 CUDA devices \(cuda:0 to "
                                          r"cuda:1\)$"):
        train.resolve_device("cuda:2")
    assert train.resolve_device("cuda:1") == torch.device("cuda", 1)


def test_device_mps_is_refused_where_it_is_missing(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^train.device: 'mps' requested but Apple's MPS is not available"):
        train.resolve_device("mps")


@pytest.mark.parametrize(("overrides", "msg"), [
    (["train.batch_size=33"], r"^train.batch_size \(33\) is the global batch: it must be a multiple of the number "
                              r"of processes \(2\), each computing batch_size / 2$"),
    (["train.batch_size=36", "model.pack=4"], r"^model.pack: each process's share of the batch \(18 = 36 / 2\) is "
                                              r"not a multiple of pack \(4\)$"),
    (["train.batch_size=36", 'model.d.minibatch="stddev"'], r"^model.d.minibatch: 'stddev' needs each process's D "
                                                            r"batch \(18\) to be a multiple of 4$"),
    (["model.sync_bn=true"], r"^model.sync_bn: SyncBatchNorm needs CUDA devices; on CPU each process normalises"),
])
def test_what_two_processes_refuse(monkeypatch, tiny_1d, overrides, msg):
    _torchrun_env(monkeypatch)  # refused before the process tries to join a group
    with pytest.raises(ConfigError, match=msg):
        train.build(config.apply_overrides(tiny_1d, overrides))


def test_one_process_ignores_sync_bn_and_splits_nothing(tiny_1d):
    run = train.build(config.apply_overrides(tiny_1d, ["model.sync_bn=true", "model.g.norm=\"batch\""]))
    assert run.par == distributed.Parallel(0, 1, 0, run.G, run.D)  # no DDP, no SyncBatchNorm
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in run.G.modules())


def test_python_dash_m_ganforge_is_the_command():
    """torchrun starts `python -m ganforge train ...` in each process."""
    src = str(Path(distributed.__file__).parents[1])
    env = os.environ | {"PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "ganforge", "train", "--help"], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.startswith("usage: ganforge train")


def test_one_process_writes_through_its_own_output(tiny_1d):
    run = train.build(tiny_1d)
    out = RunOutput.__new__(RunOutput)  # any output object: passed through untouched
    assert distributed.output_for(run, None) is None and distributed.output_for(run, out) is out


def test_rank_output_hands_on_the_record_then_stops_every_rank_on_a_non_finite_average(tiny_1d):
    seen = []

    class Spy(distributed.NullOutput):
        def on_log(self, run, rec):
            seen.append(rec)

    run = train.build(tiny_1d)
    out = distributed.RankOutput(Spy(), run.device)  # outside a process group the average is the value itself
    out.on_log(run, {"step": 10, "loss_d": 1.5, "loss_g": 0.5, "lr_d": 1e-3})
    assert seen == [{"step": 10, "loss_d": 1.5, "loss_g": 0.5, "lr_d": 1e-3}]
    with pytest.raises(train.TrainingDiverged, match="training diverged at step 20"):
        out.on_log(run, {"step": 20, "loss_d": float("nan"), "loss_g": 0.5})
    assert seen[-1]["step"] == 20  # written first, as the loop does
