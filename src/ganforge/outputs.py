"""Everything a training run writes or shows, behind one object the loop calls at a few hooks.

`RunOutput` owns metrics.jsonl, TensorBoard, the progress bar, sample pictures, the doctor, periodic
eval with best.safetensors, checkpoints and the GIF. The loop calls `on_log`, `on_sample`,
`on_checkpoint` and, in a `try/finally`, `close`; on ranks other than 0 (`NullOutput`) every hook does
nothing, so distributed training writes each file once.
"""

from __future__ import annotations

import json
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

    def on_log(self, run: Run, rec: dict) -> None: ...
    def on_sample(self, run: Run) -> None: ...
    def on_checkpoint(self, run: Run, evaluate: bool) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, run: Run, finished: bool) -> None: ...


class RunOutput(NullOutput):
    """Writes metrics.jsonl, TensorBoard, pictures, checkpoints and evals of one run; shows progress."""

    def __init__(self, run: Run, progress: str | None = None):
        cfg, t = run.cfg, run.cfg.train
        run.out.mkdir(parents=True, exist_ok=True)
        fsio.atomic_write_text(run.out / "config.toml", config.dump_toml(cfg))
        self.log = _open_log(run.out / "metrics.jsonl", run.step)
        self.bar = Progress(run.total, run.step, progress or t.progress)
        self.tb = tracking.open_writer(run.out, t.tensorboard)
        self.tb.text("config", config.dump_toml(cfg), run.step)
        self.doc = doctor.Doctor(config.to_dict(cfg), run.total) if t.doctor else None
        if self.doc is not None and run.step > 0:  # resumed: what the earlier log showed is not news
            for rec in doctor.read_metrics(run.out):
                self.doc.observe(rec)
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
        self.tb.image(run.step, "samples", run.data.family.picture(pictured, path, run.data, run.cfg, title, nrow))
        stats = {"step": run.step} | doctor.diversity(pictured, run.data.subset(512)) | _classes_produced(run, pictured)
        self.record(stats)

    def on_checkpoint(self, run: Run, evaluate: bool) -> None:
        from ganforge.train import save_run

        save_run(run)
        if evaluate:  # measured on the checkpoint just written, exactly as `ganforge eval` would
            self.record(evaluate_run(run))

    def close(self, run: Run, finished: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.bar.close()
        self.log.close()
        self.tb.close()
        pics = sample_pictures(run.out / "samples")
        if finished and run.cfg.train.animation and len(pics) > 1:
            make_animation(pics, run.out / "samples.gif")


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
    result = evaluate(run.out, metrics=e.metrics or None, n=e.n, seed=run.cfg.train.seed)
    values = {k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))}
    rec = {"step": run.step} | {f"eval/{k}": v for k, v in values.items()}
    if e.best and e.best in values:
        sign = 1 if higher_is_better(e.best) else -1
        best_path = run.out / "best.json"
        best = json.loads(best_path.read_text()) if best_path.exists() else None
        if best is None or sign * values[e.best] > sign * best["value"]:
            fsio.atomic_copy(run.out / CHECKPOINT, run.out / "best.safetensors")
            fsio.atomic_write_text(best_path, json.dumps({"metric": e.best, "value": values[e.best],
                                                          "step": run.step}) + "\n")
            rec["best"] = True
    return rec


def _open_log(path: Path, step: int):
    """Open metrics.jsonl for appending, first dropping records past `step` (a resumed crash) and a cut-off
    last line (a kill mid-write); the rewrite is atomic, so a kill during it loses nothing."""
    if path.exists():
        records, dropped = fsio.read_jsonl(path)
        keep = [r for r in records if r.get("step", 0) <= step]
        if dropped or len(keep) != len(records):
            fsio.write_jsonl(path, keep)
    return open(path, "a", buffering=1)


def _write(log, rec: dict) -> None:
    fsio.append_jsonl(log, rec)
