"""Everything a training run writes or shows, behind one object the loop calls at a few hooks.

`RunOutput` owns metrics.jsonl, TensorBoard, the progress bar, sample pictures, the doctor, periodic
eval with best.safetensors, checkpoints and the GIF. The loop calls `on_start`, `on_log`, `on_step`,
`on_sample`, `on_checkpoint`, `on_rollback` and, in a `try/finally`, `close`; on ranks other than 0
(`NullOutput`) every hook does nothing, so distributed training writes each file once.

A process may be killed at any instant: every file appears under its name complete or not at all (written
beside it and renamed), metrics.jsonl is trimmed back to the checkpoint's step on resume (the steps after it
are logged again, once), and an eval the kill cut short is redone on resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ganforge import config, doctor, fsio, tracking
from ganforge.progress import Progress
from ganforge.sampling import generate
from ganforge.viz.animation import make_animation, sample_pictures

if TYPE_CHECKING:  # pragma: no cover
    from ganforge.train import Run

CHECKPOINT = "checkpoint.safetensors"


class NullOutput:
    """The output of ranks other than 0: every hook does nothing."""

    def on_start(self, run: Run) -> None: ...
    def on_log(self, run: Run, rec: dict) -> None: ...
    def on_step(self, run: Run) -> None: ...
    def on_sample(self, run: Run) -> None: ...
    def on_checkpoint(self, run: Run, evaluate: bool) -> None: ...
    def on_rollback(self, run: Run, rec: dict, text: str) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, run: Run, finished: bool) -> None: ...


class RunOutput(NullOutput):
    """Writes metrics.jsonl, TensorBoard, pictures, checkpoints and evals of one run; shows progress."""

    def __init__(self, run: Run, progress: str | None = None):
        cfg, t = run.cfg, run.cfg.train
        run.out.mkdir(parents=True, exist_ok=True)
        remove_leftovers(run.out)
        fsio.atomic_write_text(run.out / "config.toml", config.dump_toml(cfg))
        self.log, kept = _open_log(run.out / "metrics.jsonl", run.step)
        self.evaluated = {r.get("step") for r in kept if any(k.startswith("eval/") for k in r)}
        self.bar = Progress(run.total, run.step, progress or t.progress)
        self.tb = tracking.open_writer(run.out, t.tensorboard, purge_step=run.step + 1)
        self.tb.text("config", config.dump_toml(cfg), run.step)
        self.doc = _doctor(run, kept)
        self.closed = False

    def record(self, rec: dict) -> None:
        """Write a record to metrics.jsonl and TensorBoard, show it, and let the doctor look at it."""
        _write(self.log, rec)
        self.tb.scalars(rec["step"], rec)
        if "loss_d" in rec:
            self.bar.log(rec)
        elif any(k.startswith("eval/") for k in rec):
            self.bar.log_eval(rec)
        for f in self.doc.observe(rec) if self.doc is not None else []:
            self.bar.message(doctor.format_finding(f))
            _write(self.log, {"step": rec["step"], "doctor": f.to_dict()})

    def on_start(self, run: Run) -> None:
        """Before the first step: redo the eval of the checkpoint's step when a kill cut it short (the
        checkpoint is written first, then measured; the measurement is deterministic)."""
        e = run.cfg.eval
        due = run.step > 0 and e.every > 0 and (run.step % e.every == 0 or run.step == run.total)
        if due and run.step not in self.evaluated:
            self.message(f"evaluating step {run.step} again: the process that wrote its checkpoint stopped during "
                         "its eval")
            self.record(evaluate_run(run))

    def on_log(self, run: Run, rec: dict) -> None:
        self.record(rec)

    def message(self, text: str) -> None:
        self.bar.message(text)

    def on_step(self, run: Run) -> None:
        self.bar.update(run.step)

    def on_sample(self, run: Run) -> None:
        """Picture G's samples of the fixed noise; log their diversity (and digit classes)."""
        pictured = generate(run.sample_model, run.fixed_z, run.fixed_y)  # drawn once: picture and stats
        path = run.out / "samples" / f"step_{run.step:06d}.png"
        title = f"{run.cfg.preset or run.data.name}, step {run.step}"
        nrow = run.data.num_classes if run.fixed_y is not None else 0
        with partial_file(path) as tmp:
            run.data.family.picture(pictured, tmp, run.data, run.cfg, title, nrow)
        self.tb.image(run.step, "samples", path)
        text = run.data.family.as_text(pictured, run.data)
        if text is not None:  # text lines: also as text, beside the picture and in TensorBoard
            fsio.atomic_write_text(path.with_suffix(".txt"), text + "\n")
            self.tb.text("samples", text, run.step)
        watched, warnings = run.data.family.watch(pictured, run.data)  # warnings: the doctor's "samples" check
        self.record({"step": run.step} | watched | _classes_produced(run, pictured)
                    | ({"sample_warnings": warnings} if warnings else {}))

    def on_checkpoint(self, run: Run, evaluate: bool) -> None:
        from ganforge.train import save_run

        save_run(run)
        if evaluate:  # measured on the checkpoint just written, exactly as `ganforge eval` would
            self.record(evaluate_run(run))

    def on_rollback(self, run: Run, rec: dict, text: str) -> None:
        """Back at the checkpoint's step (NaN, train.on_nan = "rollback"): drop the log past it, hide the later
        TensorBoard steps, save the config with its new learning rates, say why and log `rec`."""
        self.log.close()
        self.log, kept = _open_log(run.out / "metrics.jsonl", run.step)
        self.tb.close()
        self.tb = tracking.open_writer(run.out, run.cfg.train.tensorboard, purge_step=run.step + 1)
        fsio.atomic_write_text(run.out / "config.toml", config.dump_toml(run.cfg))
        self.doc = _doctor(run, kept)
        self.bar.update(run.step)
        self.message(text)
        self.record(rec)

    def close(self, run: Run, finished: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.bar.close()
        self.log.close()
        self.tb.close()
        pics = sample_pictures(run.out / "samples")
        if finished and run.cfg.train.animation and len(pics) > 1:
            with partial_file(run.out / "samples.gif") as tmp:
                make_animation(pics, tmp)


def _doctor(run: Run, kept: list[dict]) -> doctor.Doctor | None:
    """The doctor of a run, having seen the records kept in its log (a resumed run's findings are not news)."""
    if not run.cfg.train.doctor:
        return None
    doc = doctor.Doctor(config.to_dict(run.cfg), run.total)
    for rec in kept:
        doc.observe(rec)
    return doc


def _classes_produced(run: Run, samples: torch.Tensor) -> dict:
    """For labelled digits: how many of the pictured samples the digit classifier puts in each class."""
    from ganforge.metrics import features

    if run.data.shape != features.DIGIT_SHAPE or run.data.num_classes != features.DIGIT_CLASSES:
        return {}
    pred = features.shipped_digit_classifier().logits(samples.cpu()).argmax(1)  # (N,)
    return {"classes_produced": doctor.class_counts(pred, features.DIGIT_CLASSES)}


def evaluate_run(run: Run) -> dict:
    """Run the configured metrics on the latest checkpoint; keep best.safetensors by `eval.best`.

    Returns the metrics.jsonl record: {"step": N, "eval/<name>": value, ...} (scalars only).
    """
    from ganforge.evaluate import evaluate
    from ganforge.metrics.registry import higher_is_better

    e = run.cfg.eval
    with partial_file(run.out / "eval" / f"step_{run.step:06d}.json") as tmp:
        result = evaluate(run.out, metrics=e.metrics or None, n=e.n, seed=run.cfg.train.seed, out=tmp)
    values = {k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))}
    rec = {"step": run.step} | {f"eval/{k}": v for k, v in values.items()}
    if e.best and e.best in values:
        sign = 1 if higher_is_better(e.best) else -1
        best_path = run.out / "best.json"
        best = json.loads(best_path.read_text()) if best_path.exists() else None
        if best is not None and best.get("step") == run.step and best.get("metric") == e.best:
            rec["best"] = True  # decided (and copied) before a kill cut this eval short; it is being redone
        elif best is None or sign * values[e.best] > sign * best["value"]:
            fsio.atomic_copy(run.out / CHECKPOINT, run.out / "best.safetensors")
            fsio.atomic_write_text(best_path, json.dumps({"metric": e.best, "value": values[e.best],
                                                          "step": run.step}) + "\n")
            rec["best"] = True
    return rec


def _open_log(path: Path, step: int):
    """Open metrics.jsonl for appending, first dropping records past `step` (a resumed crash) and a cut-off
    last line (a kill mid-write); the rewrite is atomic, so a kill during it loses nothing.

    Returns the open file and the records kept.
    """
    keep: list[dict] = []
    if path.exists():
        records, dropped = fsio.read_jsonl(path)
        keep = [r for r in records if r.get("step", 0) <= step]
        if dropped or len(keep) != len(records):
            fsio.write_jsonl(path, keep)
    return open(path, "a", buffering=1), keep


def _write(log, rec: dict) -> None:
    fsio.append_jsonl(log, rec)


@contextlib.contextmanager
def partial_file(path: Path) -> Iterator[Path]:
    """Yield a hidden '.NAME.partial.EXT' beside `path` to write (same suffix: writers pick the format by it);
    then fsync it and rename it over `path`, so a kill never leaves a cut-off file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsio.fsync_dir(path.parent)
    finally:
        with contextlib.suppress(OSError):  # left only when writing failed
            tmp.unlink()


# what a killed process can leave in a run folder: partial_file's names, and fsio/checkpoint temporaries
# ('<name>.<8 random>.tmp' from mkstemp, '<name>.<pid>.<8 hex>.tmp' for checkpoint.prev) of the files written there
_WRITTEN = ("checkpoint.safetensors", "checkpoint.prev.safetensors", "best.safetensors", "best.json", "config.toml",
            "metrics.jsonl")
_LEFTOVER = re.compile(r"\..+\.partial\.\w+|(?:" + "|".join(map(re.escape, _WRITTEN))
                       + r")\.(?:[a-z0-9_]{8}|[0-9]+\.[0-9a-f]{8})\.tmp")


def is_leftover(name: str) -> bool:
    """Whether a file name in a run folder is a temporary that an interrupted write of ganforge's leaves."""
    return _LEFTOVER.fullmatch(name) is not None


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete the temporary files a killed run left in its folder (call it holding the run's lock); returns them."""
    gone = []
    for sub in (folder, folder / "samples", folder / "eval"):
        for p in sorted(sub.iterdir()) if sub.is_dir() else []:
            if p.is_file() and is_leftover(p.name):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    gone.append(p)
    return gone
