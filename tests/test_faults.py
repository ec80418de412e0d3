"""Faults during training: stop signals, SIGKILL at random moments, a kill between a checkpoint and its eval,
NaN (stop or roll back), the log window and TensorBoard across a resume, two processes on one run folder."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import checkpoint, config, fsio, outputs, train
from ganforge.cli import main as cli
from ganforge.outputs import RunOutput

# the kill harness lives with the benchmark that runs it many times
_spec = importlib.util.spec_from_file_location("faults_bench", Path(__file__).parents[1] / "benchmarks" / "faults.py")
faults = sys.modules["faults_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)

WALL_CLOCK = {"time", "steps_per_s"}


def _records(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields, which differ between any two runs."""
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in fsio.read_jsonl(run_dir / "metrics.jsonl")[0]]


def _assert_same_nets(a: train.Run, b: train.Run) -> None:
    for x, y in [(a.G, b.G), (a.D, b.D)] + ([(a.G_ema, b.G_ema)] if a.G_ema is not None else []):
        for (name, p), q in zip(x.state_dict().items(), y.state_dict().values(), strict=True):
            assert torch.equal(p, q), name


class Hooked(RunOutput):
    """A RunOutput that calls `hook(run)` after each step's log (to inject faults at a chosen step)."""

    def __init__(self, run, hook):
        super().__init__(run)
        self.hook = hook

    def on_step(self, run):
        super().on_step(run)
        self.hook(run)


def _at(step: int, action, times: int = 1):
    """A hook running `action(run)` at `step`, at most `times` times."""
    left = [times]

    def hook(run):
        if run.step == step and left[0] > 0:
            left[0] -= 1
            action(run)

    return hook


def _sigint(run):
    os.kill(os.getpid(), signal.SIGINT)


# ---------------------------------------------------------------------------------------------------
# Stop signals


SIGNAL_SETS = faults.SETS[:5] + ["train.batch_size=32", "train.steps=200", "train.log_every=7", "train.sample_every=0",
                                  "train.ckpt_every=100", 'train.progress="lines"', "train.tensorboard=false",
                                  "train.hist_samples=500", "train.animation=false"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The run of SIGNAL_SETS trained in one go (in this process, one thread like the children)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("signals") / "ref"
    assert cli(faults.train_args(out, SIGNAL_SETS)) == 0
    return out


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_with_a_checkpoint_and_resume_is_exact(tmp_path, uninterrupted, signum, code):
    """A real `python -m ganforge train`, signalled once it logs: exit code, message, checkpoint, exact resume."""
    out = tmp_path / "run"
    proc = faults.start(out, SIGNAL_SETS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # wait until it trains
        seen.append(line)
        if line.startswith("step "):
            break
    proc.send_signal(signum)
    rest, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == code, err
    step = checkpoint.load(out / train.CHECKPOINT)[1]["step"]
    assert 7 <= step < 200
    assert f"{signal.Signals(signum).name}: finishing this step, then writing a checkpoint" in err
    assert err.rstrip().splitlines()[-1] == f"stopped at step {step}: checkpoint written; continue with: " \
                                             f"ganforge train --resume {out}"
    assert not (out / ".lock").exists() and rest == ""

    assert cli(["train", "--resume", str(out)]) == 0
    _assert_same_nets(train.resume(out), train.resume(uninterrupted))
    assert _records(out) == _records(uninterrupted)  # the log window held across the stop: same averages


def test_stop_mid_window_logs_the_same_averages_and_restores_handlers(tiny_1d):
    """A stop at step 15 (between log steps 10 and 20): the resumed run logs what an uninterrupted one does."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run = train.build(tiny_1d)
    with pytest.raises(train.TrainingStopped) as e:
        train.train(run=run, output=Hooked(run, _at(15, _sigint)))
    assert e.value.code == 130 and str(e.value) == (f"stopped at step 15: checkpoint written; continue with: "
                                                    f"ganforge train --resume {run.out}")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    _, state = checkpoint.load(run.out / train.CHECKPOINT)
    assert state["step"] == 15 and state["log_count"] == 5  # steps 11..15 summed, not yet logged
    resumed = train.train(run=train.resume(run.out))
    full = train.train(config.apply_overrides(tiny_1d, [f'train.out="{run.out.parent / "full"}"']))
    _assert_same_nets(resumed, full)
    assert _records(run.out) == _records(full.out)


def test_second_signal_while_saving_says_please_wait_and_the_checkpoint_is_whole(tiny_1d, monkeypatch, capfd):
    saves = []
    real_save = checkpoint.save

    def save(path, tensors, state):  # two Ctrl-C while the checkpoint of step 20 is being written
        if state["step"] == 20:
            _sigint(None)
            _sigint(None)
        saves.append(state["step"])
        real_save(path, tensors, state)

    monkeypatch.setattr(checkpoint, "save", save)
    with pytest.raises(train.TrainingStopped, match="^stopped at step 20: "):
        train.train(tiny_1d)
    assert saves == [20]  # the save the signals came in finished, and served as the stop's checkpoint
    err = capfd.readouterr().err
    assert "SIGINT: finishing this step" in err and "saving, please wait" in err
    assert checkpoint.load(Path(tiny_1d.train.out) / train.CHECKPOINT)[1]["step"] == 20


def test_third_signal_quits_at_once():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), train.StopSignals() as stop:
        for _ in range(3):
            _sigint(None)
    assert stop.signum == signal.SIGINT and stop.count == 3 and signal.getsignal(signal.SIGINT) is before


def test_training_in_another_thread_installs_no_handlers(tiny_1d, monkeypatch):
    installed = []
    monkeypatch.setattr(signal, "signal", lambda *a: installed.append(a))
    done = []
    thread = threading.Thread(target=lambda: done.append(train.train(tiny_1d).step))
    thread.start()
    thread.join()
    assert done == [40] and installed == []


def test_learning_rates_set_on_resume_are_used(tiny_1d):
    run = train.train(config.apply_overrides(tiny_1d, ["train.steps=20"]))
    resumed = train.train(run=train.resume(run.out, ["train.steps=40", "g_optim.lr=5e-5", "d_optim.lr=1e-4"]))
    assert (resumed.opt_g.param_groups[0]["lr"], resumed.opt_d.param_groups[0]["lr"]) == (5e-5, 1e-4)
    logs = [r for r in _records(run.out) if "loss_d" in r]
    assert [(r["step"], r["lr_g"], r["lr_d"]) for r in logs[2:]] == [(30, 5e-5, 1e-4), (40, 5e-5, 1e-4)]


def test_streamed_images_resume_exactly(tmp_path):
    """Images streamed from disk (data.max_memory tiny): the loader reading ahead restarts at the checkpoint."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    for i, a in enumerate(pixels):
        Image.fromarray(a).save(folder / f"{i:02d}.png")
    sets = [f'data.path="{folder}"', "data.max_memory=0.000001", "model.z_dim=8", "model.g.channels=8",
            "model.d.channels=8", "train.batch_size=8", "train.steps=6", 'train.lr_decay="none"', "train.log_every=2",
            "train.sample_every=0", "train.ckpt_every=0", 'train.progress="none"', "train.tensorboard=false",
            "train.animation=false"]
    cfg = config.apply_overrides(config.load_preset("images"), sets + [f'train.out="{tmp_path / "run"}"'])
    run = train.build(cfg)
    assert run.data.streamed
    with pytest.raises(train.TrainingStopped, match="^stopped at step 3: "):
        train.train(run=run, output=Hooked(run, _at(3, _sigint)))
    resumed = train.train(run=train.resume(run.out))
    full = train.train(config.apply_overrides(cfg, [f'train.out="{tmp_path / "full"}"']))
    _assert_same_nets(resumed, full)
    assert _records(run.out) == _records(full.out)


# ---------------------------------------------------------------------------------------------------
# SIGKILL at random moments (benchmarks/faults.py kills many more)


def test_sigkill_at_random_moments_then_resume_is_exact(tmp_path):
    ref = faults.finish(tmp_path / "reference")  # ref.seconds: roughly how long a child trains
    tally = faults.Tally()
    faults.trial(tmp_path / "trial", ref, 2, random.Random(5), tally)
    assert tally.failures == []
    assert (tally.tried, tally.survived, tally.log, tally.values, tally.whole) == (2, 2, 2, 2, 2)


def test_inspect_names_a_cut_file_and_temporaries(tmp_path):
    run = train.train(config.apply_overrides(config.Config(), faults.SETS + [f'train.out="{tmp_path / "r"}"',
                                                                            "train.steps=5"]))
    assert faults.inspect(run.out).cut == []
    data = (run.out / train.CHECKPOINT).read_bytes()
    (run.out / train.CHECKPOINT).write_bytes(data[: len(data) // 2])
    (run.out / "best.json.abcd_123.tmp").write_text("{")
    with open(run.out / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "loss')
    d = faults.inspect(run.out)
    assert [c.split(" ")[0] for c in d.cut] == ["checkpoint.safetensors"]
    assert d.temporaries == ["best.json.abcd_123.tmp"] and d.cut_log_line


def test_resume_removes_temporaries_a_kill_left(tmp_path, tiny_1d):
    run = train.train(config.apply_overrides(tiny_1d, ["train.steps=20"]))
    left = [run.out / "checkpoint.safetensors.k2_x9abc.tmp", run.out / "checkpoint.prev.safetensors.77.0a1b2c3d.tmp",
            run.out / "samples" / ".step_000020.partial.png", run.out / "eval" / ".step_000020.partial.json"]
    mine = [run.out / "notes.tmp", run.out / "samples" / "keep.png"]
    for p in left + mine:
        p.parent.mkdir(exist_ok=True)
        p.write_text("x")
    train.train(run=train.resume(run.out, ["train.steps=30"]))
    assert [p.exists() for p in left] == [False] * 4 and all(p.exists() for p in mine)


# ---------------------------------------------------------------------------------------------------
# A kill between a checkpoint and its eval


class Killed(BaseException):
    """Stands in for SIGKILL in-process (only the files matter: what was written before it stays)."""


def _kill(run):
    raise Killed


EVAL = ["eval.every=10", 'eval.metrics=["w1"]', "eval.n=300", 'eval.best="w1"']


@pytest.mark.parametrize("where", ["before the eval", "after the best decision"])
def test_eval_cut_short_by_a_kill_is_redone_on_resume(tmp_path, tiny_1d, monkeypatch, capsys, where):
    """Killed after the checkpoint of an eval step whose eval kept best.safetensors: before that eval began, or
    after it chose the best (best.json written) but before its record was logged."""
    ref = train.train(config.apply_overrides(tiny_1d, EVAL + [f'train.out="{tmp_path / "ref"}"']))
    at = max(r["step"] for r in _records(ref.out) if r.get("best"))  # the last eval that improved on the best
    cfg = config.apply_overrides(tiny_1d, EVAL)
    real_eval, real_record = outputs.evaluate_run, RunOutput.record

    def evaluate_run(run):
        if run.step == at and where == "before the eval":
            raise Killed
        return real_eval(run)

    def record(self, rec):
        if rec["step"] == at and "eval/w1" in rec and where == "after the best decision":
            raise Killed
        real_record(self, rec)

    monkeypatch.setattr(outputs, "evaluate_run", evaluate_run)
    monkeypatch.setattr(RunOutput, "record", record)
    with pytest.raises(Killed):
        train.train(cfg)
    out = Path(cfg.train.out)
    assert checkpoint.load(out / train.CHECKPOINT)[1]["step"] == at
    assert not any(r["step"] == at and "eval/w1" in r for r in _records(out))
    best_step = json.loads((out / "best.json").read_text())["step"] if (out / "best.json").exists() else None
    assert (best_step == at) == (where == "after the best decision")
    monkeypatch.undo()

    capsys.readouterr()
    resumed = train.train(run=train.resume(out), progress="lines")
    assert f"evaluating step {at} again: the process that wrote its checkpoint stopped during its eval" in \
        capsys.readouterr().err
    _assert_same_nets(resumed, ref)
    assert _records(out) == _records(ref.out)  # the eval record, with "best": true, logged once
    assert json.loads((out / "best.json").read_text()) == json.loads((ref.out / "best.json").read_text())
    best, ref_best = checkpoint.load(out / "best.safetensors"), checkpoint.load(ref.out / "best.safetensors")
    assert best[1]["step"] == ref_best[1]["step"] and all(torch.equal(best[0][k], ref_best[0][k]) for k in best[0])


# ---------------------------------------------------------------------------------------------------
# NaN and inf


def _nan_bias(run):
    with torch.no_grad():
        run.G.out.bias.fill_(float("nan"))


def test_nan_at_a_quiet_step_is_caught_before_anything_is_written(tiny_1d):
    """NaN after step 12: step 15 draws a picture (no log, no checkpoint); nothing of step 15 reaches disk."""
    run = train.build(config.apply_overrides(tiny_1d, ["train.sample_every=15", "train.ckpt_every=10"]))
    with pytest.raises(train.TrainingDiverged, match=r"^training diverged at step 15: a loss or weight became NaN or "
                                                      r"infinite; the last good checkpoint \(.*\) is kept\. .*"
                                                      r'train.on_nan = "rollback"\.$'):
        train.train(run=run, output=Hooked(run, _at(12, _nan_bias)))
    assert checkpoint.load(run.out / train.CHECKPOINT)[1]["step"] == 10
    assert [r["step"] for r in _records(run.out)] == [10]
    assert not (run.out / "samples" / "step_000015.png").exists()


def test_rollback_goes_back_with_halved_learning_rates(tiny_1d, capsys):
    cfg = config.apply_overrides(tiny_1d, ['train.on_nan="rollback"', "train.ckpt_every=10", 'train.progress="lines"'])
    run = train.build(cfg)
    train.train(run=run, output=Hooked(run, _at(12, _nan_bias)))
    assert run.step == 40 and run.rollbacks == 1 and train._finite(run)
    lr = tiny_1d.g_optim.lr
    assert "step 20: a loss or weight became NaN or infinite; rolled back to the checkpoint of step 10 with the " \
           f"learning rates halved (G {lr / 2:g}, D {lr / 2:g}); rollback 1 of 3" in capsys.readouterr().err
    recs = _records(run.out)
    assert [r for r in recs if "rollback" in r] == [
        {"step": 10, "rollback": {"from_step": 20, "count": 1, "lr_g": lr / 2, "lr_d": lr / 2}}]
    logs = [r for r in recs if "loss_d" in r]
    assert [r["step"] for r in logs] == [10, 20, 30, 40]  # step 20 logged once, after the rollback
    assert [r["lr_g"] for r in logs] == [lr, lr / 2, lr / 2, lr / 2]
    _, state = checkpoint.load(run.out / train.CHECKPOINT)
    assert state["rollbacks"] == 1 and state["config"]["g_optim"]["lr"] == lr / 2
    assert config.load_toml(run.out / "config.toml").d_optim.lr == lr / 2
    assert tiny_1d.g_optim.lr == lr  # the caller's config is not changed


def test_rollback_stops_after_three_tries(tiny_1d):
    """NaN whenever step 12 is reached: three rollbacks (lrs 1/2, 1/4, 1/8), then training stops."""
    cfg = config.apply_overrides(tiny_1d, ['train.on_nan="rollback"', "train.ckpt_every=10"])
    run = train.build(cfg)
    with pytest.raises(train.TrainingDiverged, match=r"^training diverged at step 20 after 3 rollbacks with halved "
                                                      r"learning rates: .* spectral norm on D\.$"):
        train.train(run=run, output=Hooked(run, _at(12, _nan_bias, times=4)))
    lr = tiny_1d.g_optim.lr
    rollbacks = [r["rollback"] for r in _records(run.out) if "rollback" in r]
    assert [(b["count"], b["lr_g"]) for b in rollbacks] == [(1, lr / 2), (2, lr / 4), (3, lr / 8)]
    assert checkpoint.load(run.out / train.CHECKPOINT)[1]["step"] == 10


def test_rollback_before_the_first_checkpoint_goes_back_to_step_0(tiny_1d):
    cfg = config.apply_overrides(tiny_1d, ['train.on_nan="rollback"'])
    run = train.build(cfg)
    train.train(run=run, output=Hooked(run, _at(3, _nan_bias)))
    rollbacks = [r for r in _records(run.out) if "rollback" in r]
    assert [(r["step"], r["rollback"]["from_step"]) for r in rollbacks] == [(0, 10)] and run.step == 40


def test_on_nan_must_be_stop_or_rollback(tiny_1d):
    with pytest.raises(config.ConfigError, match="^train.on_nan: 'retry' is not one of stop, rollback$"):
        config.apply_overrides(tiny_1d, ['train.on_nan="retry"'])


def test_non_finite_values_are_written_as_null(tmp_path, tiny_1d):
    f = open(tmp_path / "m.jsonl", "w")
    fsio.append_jsonl(f, {"step": 1, "eval/fid": float("inf"), "x": [float("-inf"), float("nan"), 1.5]})
    f.close()
    assert (tmp_path / "m.jsonl").read_text() == '{"step": 1, "eval/fid": null, "x": [null, null, 1.5]}\n'
    run = train.build(tiny_1d)
    out = RunOutput(run)
    out.record({"step": 0, "eval/kid": float("nan"), "eval/fid": float("inf")})
    out.close(run, False)
    text = (run.out / "metrics.jsonl").read_text()
    assert text == '{"step": 0, "eval/kid": null, "eval/fid": null}\n'
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))


# ---------------------------------------------------------------------------------------------------
# TensorBoard across a resume


def test_tensorboard_hides_the_steps_a_resumed_run_redoes(tiny_1d):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config.apply_overrides(tiny_1d, ["train.tensorboard=true"])
    run = train.build(cfg)
    with pytest.raises(Killed):  # killed at step 35: step 30 was logged, the checkpoint is step 20's
        train.train(run=run, output=Hooked(run, _at(35, _kill)))
    train.train(run=train.resume(run.out))
    acc = EventAccumulator(str(run.out / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/d")] == [10, 20, 30, 40]


# ---------------------------------------------------------------------------------------------------
# Two processes, one run folder


def test_a_second_process_is_refused_while_a_run_trains(tmp_path, capsys):
    out = tmp_path / "run"
    sets = faults.SETS[:5] + ["train.steps=1000000", "train.ckpt_every=5", 'train.progress="none"',
                              "train.tensorboard=false", "train.sample_every=0"]
    first = faults.start(out, sets, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert faults.wait_for_lock(out, first)
        while not (out / train.CHECKPOINT).exists():
            assert first.poll() is None
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)  # paused, it still holds the folder (and leaves the CPU to the others)
        second = subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", str(out)], capture_output=True,
                                text=True, env=faults.child_env(), timeout=120)
        assert second.returncode == 2
        assert second.stderr.splitlines()[-1].startswith(f"ganforge train: error: {out} is in use by process "
                                                         f"{first.pid} on host ")
        assert cli(faults.train_args(out, sets)) == 2
        assert f"ganforge train: error: {out} already holds a run: continue it with --resume {out}" in \
            capsys.readouterr().err
        assert first.poll() is None  # the first run trains on, undisturbed
    finally:
        first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 143 and "checkpoint written; continue with: ganforge train --resume" in err
