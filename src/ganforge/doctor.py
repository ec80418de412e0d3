"""The training doctor: cheap checks on a run's logged metrics that name a problem, its evidence and fixes.

Each check reads the records of metrics.jsonl (dicts: step, loss_d, loss_g, d_real, d_fake, grad_norm_d,
grad_norm_g, lr_d, lr_g, and optionally diversity, duplicates, classes_produced) and the config dict, and
returns `Finding`s. `diagnose` runs them all after the fact, `Doctor.observe` while training (each
finding once), `ganforge doctor RUN` from the command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Thresholds, each in one place.
OVERPOWER_REAL = 0.95  # D(x) above this ...
OVERPOWER_FAKE = 0.05  # ... and D(G(z)) below this, for ...
OVERPOWER_RECORDS = 5  # ... this many consecutive log records: D has won
GRAD_COLLAPSE = 0.25  # G's gradient norm below this fraction of its early value: G barely learns
DIVERSITY_MIN = 0.5  # generated spread / real spread below this: mode collapse
DUPLICATES_MAX = 0.5  # share of near-duplicate samples above this: mode collapse
CLASS_SHARE = 0.01  # a class counts as produced when it gets at least this share of the samples
OSCILLATION_GROWTH = 3.0  # loss_d's step-to-step spread grew this many times over its earlier level ...
OSCILLATION_MIN = 0.1  # ... and is at least this large (in loss units)
EXPLODE = 100.0  # a gradient norm this many times its median: exploding gradients
LR_RANGE = (1e-6, 1e-2)  # learning rates outside this range rarely train a GAN
BATCH_MIN = 8  # smaller batches make D's and G's updates mostly noise
NUMBERS = ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g")


@dataclass
class Finding:
    """One problem: which check, how bad ('error' or 'warning'), since when, what was seen, what to try."""

    check: str
    severity: str
    step: int | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        """Identity for 'fires once': the check, plus the config key for config findings."""
        return self.check, str(self.evidence.get("key", ""))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------
# Sample statistics (the trainer logs them as record fields, so the checks also work from logs alone)


def _flat(x) -> torch.Tensor:
    x = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return x.double().reshape(len(x), -1)  # (N, D)


def diversity(samples, real, max_n: int = 512, seed: int = 0) -> dict[str, float]:
    """{'diversity', 'duplicates'} of generated samples (N, ...) against real ones (M, ...), flattened.

    diversity: mean pairwise L2 distance among the samples / the same among as many real examples
    (about 1 when G covers the data's spread, near 0 when G makes one thing). duplicates: share of samples
    whose nearest other sample is within a tenth of the real data's median nearest-neighbour distance.
    Up to `max_n` of each are used: the first samples, a seeded random subset of the real data.
    """
    n = min(len(samples), len(real), max_n)
    if n < 2:
        raise ValueError(f"diversity: needs at least 2 samples and 2 real examples, got {len(samples)} and "
                         f"{len(real)}")
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n]
    # subsample before leaving the device: `real` may be a whole dataset on the GPU
    ref = real[pick.to(real.device)] if isinstance(real, torch.Tensor) else np.asarray(real)[pick.numpy()]
    fake, ref = _flat(samples[:n]), _flat(ref)
    if fake.shape[1] != ref.shape[1]:
        raise ValueError(f"diversity: samples and real differ in size per example: {fake.shape[1]} vs "
                         f"{ref.shape[1]}")
    d_fake, d_ref = torch.cdist(fake, fake), torch.cdist(ref, ref)  # (n, n) each
    mean_ref = d_ref.sum() / (n * (n - 1))
    if mean_ref == 0:
        raise ValueError("diversity: the real examples are all identical")
    eye = torch.eye(n, dtype=torch.bool)
    nn_fake = d_fake.masked_fill(eye, math.inf).min(1).values
    nn_ref = d_ref.masked_fill(eye, math.inf).min(1).values
    dup = (nn_fake <= 0.1 * nn_ref.median()).double().mean()
    return {"diversity": float(d_fake.sum() / (n * (n - 1)) / mean_ref), "duplicates": float(dup)}


def class_counts(labels, num_classes: int) -> list[int]:
    """How many samples a classifier put in each class: log it as the record field `classes_produced`."""
    labels = torch.as_tensor(np.asarray(labels)).long().flatten()
    return torch.bincount(labels, minlength=num_classes).tolist()


def classes_covered(counts: list[int], min_share: float = CLASS_SHARE) -> int:
    """Number of classes holding at least `min_share` of the samples."""
    total = sum(counts)
    return sum(c >= min_share * total for c in counts) if total else 0


# ---------------------------------------------------------------------------------------------------
# Reading a run


def read_metrics(path: str | Path) -> list[dict]:
    """The records of RUN/metrics.jsonl (or of that file); unreadable lines (a cut-off last line) skipped."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".jsonl":
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {path.parent}: not a ganforge run folder, or training "
                                "has not logged yet")
    records = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def read_config(run_dir: str | Path) -> dict | None:
    """RUN/config.toml as a dict, or None when the run has none."""
    path = Path(run_dir) / "config.toml"
    return tomllib.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------------------------------------------
# The checks: each takes (metric records, config dict or None) and returns a list of findings.


def _num(rec: dict, key: str) -> float | None:
    v = rec.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _series(records: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) for the records that hold a number under `key`."""
    return [(r.get("step", i), v) for i, r in enumerate(records) if (v := _num(r, key)) is not None]


def _get(cfg: dict | None, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _probability_loss(records: list[dict], cfg: dict | None) -> bool:
    """True when D(x), D(G(z)) are logged as probabilities (BCE-type losses), so 'near 1' means something."""
    from ganforge.losses import LOSSES

    name = _get(cfg, "loss.name")
    if name in LOSSES:
        return LOSSES[name].probability
    values = [v for k in ("d_real", "d_fake") for _, v in _series(records, k)]
    return bool(values) and all(0 <= v <= 1 for v in values)


def check_overpowering(records: list[dict], cfg: dict | None) -> list[Finding]:
    """D(x) near 1 and D(G(z)) near 0 for several consecutive log records: D has won, G learns little."""
    if not _probability_loss(records, cfg):
        return []
    best: tuple[int, int] = (0, 0)  # (length, end index) of the longest run
    length = 0
    rows = [(r.get("step"), _num(r, "d_real"), _num(r, "d_fake")) for r in records]
    rows = [row for row in rows if row[1] is not None and row[2] is not None]
    for i, (_, dx, dgz) in enumerate(rows):
        length = length + 1 if dx > OVERPOWER_REAL and dgz < OVERPOWER_FAKE else 0
        if length >= best[0]:
            best = (length, i)
    length, end = best
    if length < OVERPOWER_RECORDS:
        return []
    first, last = rows[end - length + 1], rows[end]
    ongoing = end == len(rows) - 1
    ev = {"from_step": first[0], "to_step": last[0], "records": length, "d_real": last[1], "d_fake": last[2]}
    msg = (f"The discriminator is overpowering the generator: from step {first[0]} to {last[0]} "
           f"({length} log records{', still ongoing' if ongoing else ''}) D(x) stayed above {OVERPOWER_REAL} "
           f"and D(G(z)) below "
           f"{OVERPOWER_FAKE} (at step {last[0]}: D(x) = {last[1]:.3f}, D(G(z)) = {last[2]:.3f}), so D tells "
           "every fake apart and G gets little useful signal.")
    grads = [v for _, v in _series(records, "grad_norm_g")]
    if len(grads) >= 6:  # early = the first third (D is still untrained at the very first record)
        early, late = statistics.median(grads[: max(3, len(grads) // 3)]), statistics.median(grads[-3:])
        ev |= {"grad_norm_g_early": early, "grad_norm_g_late": late}
        if early > 0 and late < GRAD_COLLAPSE * early:
            msg += (f" G's gradient norm has collapsed to {late / early:.1%} of its early value "
                    f"({early:.3g} -> {late:.3g}).")
    advice = []
    lr_g = _get(cfg, "g_optim.lr")
    if isinstance(lr_g, (int, float)) and lr_g < LR_RANGE[0]:
        advice.append(f"g_optim.lr is {lr_g:g}, so G {'never changes' if lr_g == 0 else 'hardly changes'}: "
                      "set it to about 2e-4 (--set g_optim.lr=2e-4).")
    if _get(cfg, "loss.name") == "minimax":
        advice.append("Use the non-saturating loss (--loss bce): with minimax, G's gradient vanishes when D "
                      "wins.")
    advice += ["Slow D down: halve d_optim.lr, or make G's learning rate larger than D's "
               "(e.g. --set d_optim.lr=1e-4).",
               "Make D's job harder: one-sided label smoothing (--set loss.label_smoothing=0.1), dropout "
               "in D (--set model.d.dropout=0.3) or spectral norm (--set model.d.spectral_norm=true)."]
    if _get(cfg, "train.d_steps") not in (None, 1):
        advice.append("Train D once per G step (--set train.d_steps=1).")
    return [Finding("overpowering", "warning", first[0], msg, ev, advice[:3])]


def _trailing(series: list[tuple[int, float]], bad: Callable[[float], bool]) -> list[tuple[int, float]]:
    """The longest stretch at the end of `series` whose values are all bad."""
    n = 0
    while n < len(series) and bad(series[-1 - n][1]):
        n += 1
    return series[len(series) - n:]


def check_mode_collapse(records: list[dict], cfg: dict | None) -> list[Finding]:
    """Generated samples spread far less than real data, repeat each other, or cover few classes."""
    problems, ev, step = [], {}, None
    for key, bad, what in (("diversity", lambda v: v < DIVERSITY_MIN, "spread"),
                           ("duplicates", lambda v: v > DUPLICATES_MAX, "duplicates")):
        vals = _trailing(_series(records, key), bad)
        if len(vals) >= 2:  # two in a row: a single low value can be noise
            ev[key] = vals[-1][1]
            step = vals[0][0] if step is None else min(step, vals[0][0])
            if what == "spread":
                problems.append(f"the samples spread only {vals[-1][1]:.0%} as much as real data "
                                f"(mean pairwise distance ratio {vals[-1][1]:.3f}, healthy is about 1)")
            else:
                problems.append(f"{vals[-1][1]:.0%} of the samples are near-duplicates of another sample")
    classes = [(r.get("step"), r["classes_produced"], r.get("num_classes")) for r in records
               if type(r.get("classes_produced")) in (list, int)]
    if classes:
        s, produced, num = classes[-1]
        if isinstance(produced, list):
            produced, num = classes_covered(produced), len(produced)
        if num and produced < num / 2:
            ev |= {"classes_produced": produced, "num_classes": num}
            step = s if step is None else min(step, s)
            problems.append(f"only {produced} of {num} classes get at least {CLASS_SHARE:.0%} of the samples")
    if not problems:
        return []
    msg = "Mode collapse: " + "; ".join(problems) + ". G is producing a few outputs whatever the noise."
    advice = ["Weaken or regularise D so G is not pushed onto one safe output: spectral norm "
              "(--set model.d.spectral_norm=true) or a lower d_optim.lr.",
              "Try a loss less prone to collapse, e.g. --loss hinge, or --loss wgan with a gradient penalty.",
              "Keep an EMA of G's weights (--set model.ema=0.999) and compare its samples; restart from an "
              "earlier checkpoint if the collapse is recent."]
    return [Finding("mode_collapse", "warning", step, msg, ev, advice)]


def check_divergence(records: list[dict], cfg: dict | None) -> list[Finding]:
    """A loss, D output or gradient norm became NaN or infinite."""
    for r in records:
        bad = [k for k in NUMBERS if (v := _num(r, k)) is not None and not math.isfinite(v)]
        if bad:
            msg = (f"Training diverged at step {r.get('step')}: {', '.join(f'{k} = {r[k]}' for k in bad)}. "
                   "Everything after this point is meaningless.")
            advice = ["Lower both learning rates (e.g. halve g_optim.lr and d_optim.lr).",
                      "Stabilise D: spectral norm (--set model.d.spectral_norm=true) or a gradient penalty.",
                      "If training in bf16, try --precision fp32."]
            return [Finding("divergence", "error", r.get("step"), msg, {"step": r.get("step"), "fields": bad},
                            advice)]
    return []


def check_oscillation(records: list[dict], cfg: dict | None) -> list[Finding]:
    """loss_d swings growing: its step-to-step changes in the last window are much larger than before."""
    series = [(s, v) for s, v in _series(records, "loss_d") if math.isfinite(v)]
    window = max(5, len(series) // 5)
    if len(series) < 3 * window + 1:
        return []
    jumps = np.abs(np.diff([v for _, v in series]))  # change between log records (a steady trend is small)
    chunks = [jumps[i - window: i] for i in range(len(jumps), window - 1, -window)]  # last window first
    last, baseline = float(np.std(chunks[0])), float(np.median([np.std(c) for c in chunks[1:]]))
    if not (last > OSCILLATION_GROWTH * baseline and last > OSCILLATION_MIN):
        return []
    step = series[-window][0]
    msg = (f"Training is becoming unstable: since step {step} loss_d swings between log records are "
           f"{last / max(baseline, 1e-12):.1f}x larger than before (std of its changes {last:.3f} vs "
           f"{baseline:.3f}).")
    advice = ["Lower the learning rates (e.g. halve d_optim.lr and g_optim.lr).",
              "Use Adam beta1=0.5 (--set d_optim.beta1=0.5 --set g_optim.beta1=0.5), the usual GAN setting.",
              "Regularise D: spectral norm (--set model.d.spectral_norm=true) or a gradient penalty."]
    return [Finding("oscillation", "warning", step, msg, {"window_std": last, "earlier_std": baseline,
                                                          "window_records": window}, advice)]


def check_exploding_gradients(records: list[dict], cfg: dict | None) -> list[Finding]:
    """A gradient norm far above its usual (median) size; one finding per network."""
    out = []
    for key in ("grad_norm_d", "grad_norm_g"):
        series = [(s, v) for s, v in _series(records, key) if math.isfinite(v)]
        if len(series) < 5:
            continue
        median = statistics.median(v for _, v in series)
        spikes = [(s, v) for s, v in series if v > EXPLODE * median]
        if spikes and median > 0:
            s, v = max(spikes, key=lambda sv: sv[1])
            net = "D" if key.endswith("_d") else "G"
            msg = (f"{net}'s gradients are exploding: {key} reached {v:.3g} at step {s}, {v / median:.0f}x "
                   f"its median {median:.3g} ({len(spikes)} log record(s) above {EXPLODE:g}x).")
            advice = [f"Lower {net.lower()}_optim.lr (e.g. halve it).",
                      "Regularise D: spectral norm (--set model.d.spectral_norm=true) or a gradient penalty.",
                      "Check the data range: images must be in [-1, 1]."]
            ev = {"key": key, "max": v, "median": median, "step": s, "spikes": len(spikes)}
            out.append(Finding("exploding_gradients", "warning", spikes[0][0], msg, ev, advice))
    return out


def check_config(records: list[dict], cfg: dict | None) -> list[Finding]:
    """Learning rates and batch size far from the ranges that usually train."""
    out = []
    for key in ("g_optim.lr", "d_optim.lr"):
        lr = _get(cfg, key)
        if isinstance(lr, (int, float)) and not LR_RANGE[0] <= lr <= LR_RANGE[1]:
            net = "G" if key[0] == "g" else "D"
            what = (f"so {net} {'never learns' if lr == 0 else 'hardly learns'}" if lr < LR_RANGE[0]
                    else f"so {net}'s updates overshoot and training tends to diverge")
            out.append(Finding("config", "warning", None, f"{key} = {lr:g} is outside the usual range "
                               f"{LR_RANGE[0]:g}..{LR_RANGE[1]:g}, {what}.", {"key": key, "value": lr},
                               [f"Use 1e-4..5e-4 (--set {key}=2e-4), the range most GAN papers train with.",
                                "Change one learning rate at a time; compare runs with `ganforge report`."]))
    bs = _get(cfg, "train.batch_size")
    if isinstance(bs, int) and bs < BATCH_MIN:
        out.append(Finding("config", "warning", None, f"train.batch_size = {bs} is very small "
                           f"(< {BATCH_MIN}): D's and G's updates are mostly noise and batch-norm statistics "
                           "are unreliable.",
                           {"key": "train.batch_size", "value": bs},
                           ["Use a batch of 32..128 (--batch-size 64).",
                            "If memory is the limit, lower the model width instead."]))
    return out


# check name -> what a person calls the problem
def check_samples(records: list[dict], cfg: dict | None) -> list[Finding]:
    """What the data family saw in the pictured samples (a table's missing category or collapsed column, text
    copied or collapsed onto a few lines): each distinct warning once, from the first step it was seen."""
    first: dict[str, int] = {}
    for r in records:
        for text in r.get("sample_warnings") or []:
            first.setdefault(str(text), r.get("step"))
    return [Finding("samples", "warning", step, text, {"key": text},
                    ["more steps, a lower learning rate, or PacGAN (model.pack) against collapse; fewer steps or "
                     "more data against copying"]) for text, step in first.items()]


TITLES = {
    "samples": "what the samples show",
    "config": "config out of the usual range",
    "divergence": "training diverged",
    "overpowering": "discriminator overpowering the generator",
    "mode_collapse": "mode collapse",
    "oscillation": "growing loss oscillation",
    "exploding_gradients": "exploding gradients",
}
# name -> check; `diagnose` runs them in this order.
CHECKS: dict[str, Callable[[list[dict], dict | None], list[Finding]]] = {
    "config": check_config,
    "divergence": check_divergence,
    "overpowering": check_overpowering,
    "mode_collapse": check_mode_collapse,
    "oscillation": check_oscillation,
    "exploding_gradients": check_exploding_gradients,
    "samples": check_samples,
}


# ---------------------------------------------------------------------------------------------------
# Running the checks


def _as_dict(cfg) -> dict | None:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


# Checks that wait for part of the run: every GAN starts from noise, so early samples all look alike
# (a healthy mnist-mlp run produces 1-3 digit classes at 20% of its steps, all ten by 30%).
GRACE = {"mode_collapse": 0.3}  # check -> fraction of the run's steps before it judges


def _total_steps(records: list[dict], cfg: dict | None, total_steps: int | None) -> int:
    """The run's planned length: given, else train.steps from the config, else the last logged step."""
    if total_steps:
        return total_steps
    steps = ((cfg or {}).get("train") or {}).get("steps") or 0
    return steps or max((r.get("step") or 0 for r in records), default=0)


def diagnose(records: list[dict], cfg_dict: dict | None = None, total_steps: int | None = None) -> list[Finding]:
    """All findings for these metric records (doctor records in the log, and the steps of a text run's LSTM G
    learning by maximum likelihood before D trains, are ignored) and config.

    total_steps is the run's planned length (for the checks in GRACE); by default train.steps or the last step.
    """
    records = [r for r in records if "doctor" not in r and not r.get("mle")]
    cfg = _as_dict(cfg_dict)
    total = _total_steps(records, cfg, total_steps)
    findings = []
    for name, check in CHECKS.items():
        start = GRACE.get(name, 0.0) * total
        findings += check([r for r in records if (r.get("step") or 0) >= start], cfg)
    return findings


def diagnose_run(run_dir: str | Path) -> list[Finding]:
    """Findings for a run folder (or its metrics.jsonl), from its metrics.jsonl and config.toml."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    return diagnose(records, read_config(run_dir if run_dir.is_dir() else run_dir.parent))


class Doctor:
    """Watches records as training logs them; `observe` returns only findings not reported before."""

    def __init__(self, cfg_dict: dict | None = None, total_steps: int | None = None):
        self.cfg, self.total_steps = _as_dict(cfg_dict), total_steps
        self.records: list[dict] = []
        self.seen: set[tuple[str, str]] = set()

    def observe(self, record: dict) -> list[Finding]:
        if "doctor" in record:
            return []
        self.records.append(record)
        new = [f for f in diagnose(self.records, self.cfg, self.total_steps) if f.key not in self.seen]
        self.seen |= {f.key for f in new}
        return new


def format_finding(f: Finding, width: int = 100) -> str:
    """A finding as a few lines of text: severity, what, from which step, the evidence, then what to try."""
    at = f" (from step {f.step})" if f.step is not None else ""
    lines = [f"{f.severity.upper()}: {TITLES.get(f.check, f.check)}{at}",
             textwrap.fill(f.message, width, initial_indent="  ", subsequent_indent="  ")]
    for i, tip in enumerate(f.advice):
        lines.append(textwrap.fill(tip, width, initial_indent="  try: " if i == 0 else "     - ",
                                   subsequent_indent=" " * 7))
    return "\n".join(lines)


def format_findings(findings: list[Finding]) -> str:
    """All findings as text, or 'no problems found'."""
    if not findings:
        return "no problems found"
    return "\n\n".join(format_finding(f) for f in findings)


# ---------------------------------------------------------------------------------------------------
# Command line: ganforge doctor RUN


def cmd_doctor(args) -> int:
    print(format_findings(diagnose_run(args.run)))
    return 0


def add_doctor_parser(subparsers) -> None:
    """Register `ganforge doctor RUN` on the CLI's subparsers."""
    p = subparsers.add_parser("doctor", help="check a run's metrics for common GAN training problems")
    p.add_argument("run", help="run folder (holding metrics.jsonl and config.toml)")
    p.set_defaults(func=cmd_doctor)
