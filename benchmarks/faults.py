"""Kill `ganforge train` with SIGKILL at random moments and check that `--resume` finishes the run exactly.

A trial trains a tiny 1-D run (a checkpoint every step, an eval with best.safetensors every 5 steps,
pictures, EMA) in a child process, kills it after a random delay, one to three times (each time the next
child continues with `--resume`, or starts again when no checkpoint was written yet), then finishes it
with `ganforge train --resume`. Random delays over the whole run land in checkpoint writes often (with a
checkpoint every step they take most of the time), in evals, pictures and the final GIF. Counted per kill:

  survived  the finished run's G, G_ema and D equal an uninterrupted run's bit for bit
  log       metrics.jsonl holds every log, picture and eval step exactly once (none duplicated or missing)
  values    ... and every record equals the uninterrupted run's (wall-clock fields aside)
  whole     right after the kill, no file under its real name is cut off (checkpoints, best.*, config.toml,
            eval/*.json, pictures, GIF, metrics.jsonl but its last line); temporaries beside them are counted
            apart, and must be gone once the run is finished

    python benchmarks/faults.py [--kills 40] [--seed 0]

tests/test_faults.py runs a few kills through the same functions.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
import torch
from PIL import Image

import ganforge
from ganforge import checkpoint, fsio, outputs
from ganforge.cli import main as cli

# the tiny run every trial trains: 60 checkpoints, 12 evals (w1, best kept), 2 pictures, a GIF
SETS = ['data.name="gaussian-1d"', "data.n=2000", "model.z_dim=4", "model.g.hidden=[16]", "model.d.hidden=[16]",
        "model.ema=0.9", "train.batch_size=32", "train.steps=60", "train.log_every=4", "train.sample_every=30",
        "train.ckpt_every=1", "train.hist_samples=500", 'train.progress="none"', "train.tensorboard=false",
        "eval.every=5", 'eval.metrics=["w1"]', "eval.n=300", 'eval.best="w1"']
STEPS = 60
WALL_CLOCK = {"time", "steps_per_s"}  # record fields that differ between any two runs


def train_args(out: Path, sets: list[str] = SETS, resume: bool = False) -> list[str]:
    """`ganforge train` arguments: a new run in `out`, or `--resume out` (its saved config)."""
    if resume:
        return ["train", "--resume", str(out)]
    return ["train", "--out", str(out)] + [a for s in sets for a in ("--set", s)]


def child_env() -> dict[str, str]:
    """The environment of a child `python -m ganforge`: this ganforge, one thread (bit-identical to this process)."""
    src = str(Path(ganforge.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                         "PYTHONPATH": src + (os.pathsep + path if path else "")}


def start(out: Path, sets: list[str] = SETS, **popen) -> subprocess.Popen:
    """A child `python -m ganforge train` of `out`: resumed when it holds a checkpoint, else started anew."""
    args = train_args(out, sets, resume=(out / outputs.CHECKPOINT).exists())
    return subprocess.Popen([sys.executable, "-m", "ganforge", *args], env=child_env(), **popen)


def wait_for_lock(out: Path, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Wait until `proc` holds the run's lock (it is in `train` then); False when it exited first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            if json.loads((out / ".lock").read_text()).get("pid") == proc.pid:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    return False


@dataclass
class Outcome:
    """What a finished run left: its final nets' tensors, its log records, its files."""

    tensors: dict[str, torch.Tensor]
    records: list[dict]
    seconds: float = 0.0

    def steps(self, kind: str) -> list[int]:
        """The steps of the log's records of one kind: 'log' (losses), 'picture', 'eval'."""
        has = {"log": "loss_d", "picture": "diversity", "eval": "eval/w1"}[kind]
        return [r["step"] for r in self.records if has in r]


def finish(out: Path, sets: list[str] = SETS) -> Outcome:
    """Run `ganforge train` (in this process) to the end: `--resume` when `out` holds a checkpoint."""
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        rc = cli(train_args(out, sets, resume=(out / outputs.CHECKPOINT).exists()))
    if rc != 0:
        raise RuntimeError(f"ganforge train {out} exited {rc}: {err.getvalue().strip()}")
    tensors, _ = checkpoint.load(out / outputs.CHECKPOINT)
    nets = {k: v for k, v in tensors.items() if k.split(".")[0] in ("g", "g_ema", "d")}
    records, _ = fsio.read_jsonl(out / "metrics.jsonl")
    return Outcome(nets, records, time.perf_counter() - t0)


def same_weights(a: Outcome, b: Outcome) -> bool:
    return a.tensors.keys() == b.tensors.keys() and all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def same_steps(a: Outcome, b: Outcome) -> bool:
    return all(a.steps(kind) == b.steps(kind) for kind in ("log", "picture", "eval"))


def same_records(a: Outcome, b: Outcome) -> bool:
    def strip(records: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in records]

    return strip(a.records) == strip(b.records)


@dataclass
class Damage:
    """What a kill left in a run folder."""

    cut: list[str] = field(default_factory=list)  # files under their real names that are not whole
    temporaries: list[str] = field(default_factory=list)  # writes in progress, beside their files
    cut_log_line: bool = False  # metrics.jsonl ends in a cut-off line (tolerated: dropped on resume)
    eval_pending: bool = False  # the checkpoint's step had an eval due that metrics.jsonl lacks


def inspect(out: Path) -> Damage:
    """Check every file of a run folder right after a kill."""
    d = Damage()
    for p in sorted(x for x in out.rglob("*") if x.is_file()):
        name, rel = p.name, str(p.relative_to(out))
        if outputs.is_leftover(name):
            d.temporaries.append(rel)
            continue
        try:
            if name.endswith(".safetensors"):
                checkpoint.load(p)
            elif name.endswith(".json"):
                json.loads(p.read_text())
            elif name.endswith(".toml"):
                tomllib.loads(p.read_text())
            elif name.endswith((".png", ".gif")):
                with Image.open(p) as img:
                    img.load()
                    for _ in range(getattr(img, "n_frames", 1) - 1):
                        img.seek(img.tell() + 1)
            elif name == "metrics.jsonl":
                lines = p.read_bytes().split(b"\n")  # a whole file ends in a newline: an empty last piece
                bad = [i for i, ln in enumerate(lines) if ln.strip() and not _is_json(ln)]
                d.cut_log_line = bad == [len(lines) - 1]
                if bad and not d.cut_log_line:
                    raise ValueError(f"unreadable lines {bad}")
        except Exception as e:  # anything that cannot be read whole
            d.cut.append(f"{rel} ({type(e).__name__}: {str(e)[:80]})")
    ckpt = out / outputs.CHECKPOINT
    if ckpt.exists() and not any("checkpoint.safetensors" in c for c in d.cut):
        step = checkpoint.load(ckpt)[1]["step"]
        records, _ = fsio.read_jsonl(out / "metrics.jsonl") if (out / "metrics.jsonl").exists() else ([], 0)
        d.eval_pending = step > 0 and step % 5 == 0 and not any(r.get("step") == step and "eval/w1" in r
                                                                 for r in records)
    return d


def _written(temporary: str) -> str:
    """The file a temporary is being written for: 'checkpoint.safetensors', 'a picture', ..."""
    name = Path(temporary).name
    if name.startswith("."):
        return {".png": "a picture", ".gif": "the GIF", ".json": "an eval result"}.get(Path(name).suffix, name)
    return re.sub(r"\.(?:[a-z0-9_]{8}|[0-9]+\.[0-9a-f]{8})\.tmp$", "", name)


def _step(out: Path) -> int:
    """The step of the run's checkpoint (0 when it has none)."""
    path = out / outputs.CHECKPOINT
    return checkpoint.load(path)[1]["step"] if path.exists() else 0


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


@dataclass
class Tally:
    """Counts over all kills; `where` says where the kills landed."""

    tried: int = 0
    survived: int = 0
    log: int = 0
    values: int = 0
    whole: int = 0
    where: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def land(self, place: str) -> None:
        self.where[place] = self.where.get(place, 0) + 1


def trial(folder: Path, ref: Outcome, kills: int, rng: random.Random, tally: Tally) -> None:
    """Kill a run `kills` times at random moments, finish it, and count what held."""
    out = folder / "run"
    whole = []
    for _ in range(kills):
        proc = start(out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_lock(out, proc):
            raise RuntimeError(f"the child exited {proc.wait()} before training began")
        time.sleep(rng.uniform(0.0, 1.05 * ref.seconds * (1 - _step(out) / STEPS)))
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait()
        d = inspect(out)
        whole.append(not d.cut)
        tally.failures += [f"cut after a kill: {c}" for c in d.cut]
        if rc == 0:
            tally.land("after the run had finished")
        elif d.temporaries:
            tally.land("writing " + " and ".join(sorted({_written(t) for t in d.temporaries})))
        elif d.eval_pending:
            tally.land("between a checkpoint and its eval")
        else:
            tally.land("between writes (a step, drawing a picture, measuring)")
    got = finish(out)
    left = [str(p.relative_to(out)) for p in out.rglob("*") if outputs.is_leftover(p.name)]
    tally.failures += [f"temporary left after the finish: {t}" for t in left]
    ok = [same_weights(got, ref), same_steps(got, ref), same_records(got, ref)]
    if not ok[0]:
        tally.failures.append(f"{folder.name}: final weights differ from the uninterrupted run")
    if not ok[2]:
        tally.failures.append(f"{folder.name}: metrics.jsonl differs: {_first_difference(got, ref)}")
    tally.tried += kills
    tally.survived += kills * ok[0]
    tally.log += kills * ok[1]
    tally.values += kills * ok[2]
    tally.whole += sum(whole)


def _first_difference(a: Outcome, b: Outcome) -> str:
    for i, (x, y) in enumerate(zip(a.records, b.records, strict=False)):
        x, y = ({k: v for k, v in r.items() if k not in WALL_CLOCK} for r in (x, y))
        if x != y:
            return f"record {i}: {x} vs {y}"
    return f"{len(a.records)} records vs {len(b.records)}"


def timed_child(out: Path, ref: Outcome) -> float:
    """Seconds an uninterrupted child holds the run's lock; its final weights must equal `ref`'s (in-process)."""
    proc = start(out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if not wait_for_lock(out, proc):
        raise RuntimeError(f"the child exited {proc.wait()} before training began")
    t0 = time.perf_counter()
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the uninterrupted child exited {proc.returncode}: {err.strip()}")
    tensors, _ = checkpoint.load(out / outputs.CHECKPOINT)
    if not same_weights(Outcome({k: v for k, v in tensors.items() if k in ref.tensors}, []), ref):
        raise RuntimeError("a child process and this one train different weights from the same config")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=40, help="SIGKILLs in all (1 to 3 per trial)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    args = p.parse_args()
    torch.set_num_threads(1)  # as the children (OMP_NUM_THREADS=1): bit-identical arithmetic
    rng = random.Random(args.seed)
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        ref = finish(Path(tmp) / "reference")
        ref.seconds = timed_child(Path(tmp) / "timed", ref)
        print(f"an uninterrupted child trains for {ref.seconds:.1f} s: a kill comes 0-{1.05 * ref.seconds:.1f} s "
              "(times the share of steps left) after a child takes the run's lock", flush=True)
        n = 0
        while tally.tried < args.kills:
            n += 1
            kills = min(rng.randint(1, 3), args.kills - tally.tried)
            trial(Path(tmp) / f"trial{n}", ref, kills, rng, tally)
            print(f"  trial {n}: {tally.tried} kills so far", flush=True)
    print(f"kills tried {tally.tried} / survived with a bit-identical final generator {tally.survived} / "
          f"metrics.jsonl with no duplicated or missing steps {tally.log} (identical records {tally.values}) / "
          f"no half-written file {tally.whole}")
    print("where the kills landed: " + ", ".join(f"{v} {k}" for k, v in sorted(tally.where.items())))
    for f in tally.failures:
        print("FAILED:", f)
    sys.exit(1 if tally.failures else 0)


if __name__ == "__main__":
    main()
