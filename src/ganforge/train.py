"""The training loop: D step(s), G step, EMA, log, sample pictures, checkpoint.

`train(cfg)` is the whole program behind `ganforge train`; `build(cfg)` makes the objects it uses,
so tests and users can build and inspect them (or pass their own G and D).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import ganforge
from ganforge import checkpoint, config, doctor, tracking
from ganforge.augment import diff_augment, instance_noise, noise_std
from ganforge.config import Config, ConfigError
from ganforge.data import Dataset, IndexSampler, load_dataset
from ganforge.losses import GANLoss, make_loss
from ganforge.models import build_discriminator, build_generator
from ganforge.models.conditional import fixed_labels, sample_labels
from ganforge.models.layers import pack
from ganforge.progress import Progress
from ganforge.regularizers import REGULARIZERS, Regularizer
from ganforge.sampling import generate
from ganforge.viz.animation import make_animation, sample_pictures

CHECKPOINT = "checkpoint.safetensors"


@dataclass
class Run:
    """Everything a training run holds; `step` counts G updates done."""

    cfg: Config
    out: Path
    data: Dataset
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sampler: IndexSampler
    fixed_z: torch.Tensor  # (num_samples, z_dim): the same latent points pictured at every interval
    device: torch.device
    total: int  # G updates to reach
    fixed_y: torch.Tensor | None = None  # (num_samples,) labels pictured with fixed_z (conditional runs)
    step: int = 0

    @property
    def sample_model(self) -> nn.Module:
        """The generator to sample and evaluate: G_ema when EMA is on."""
        return self.G_ema if self.G_ema is not None else self.G


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: '{name}' requested but CUDA is not available (use cpu or auto)")
    return dev


def _adam(params, o: config.OptimConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)


def default_out(cfg: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.preset or cfg.data.name}-{stamp}"


def build(cfg: Config, out: str | Path | None = None, G: nn.Module | None = None,
          D: nn.Module | None = None, data: Dataset | None = None) -> Run:
    """Seed, load data, build (or take) G and D, their optimizers and the batch sampler."""
    config.validate(cfg)
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    data = (data or load_dataset(cfg.data, seed=cfg.train.seed)).to(device)
    images = data.kind == "image"
    if cfg.model.conditional != "none" and (data.y is None or data.num_classes < 2):
        raise ConfigError(f"model.conditional: '{cfg.model.conditional}' needs labelled data; "
                          f"{data.name} has no labels")
    if cfg.train.augment and not images:
        raise ConfigError(f"train.augment: DiffAugment needs image data; {data.name} is {data.kind}")
    G = (G or build_generator(cfg.model, data.shape, images, data.num_classes)).to(device)
    D = (D or build_discriminator(cfg.model, data.shape, data.num_classes)).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.model.ema > 0 else None
    # The fixed noise has its own generator so pictures never disturb the training random stream.
    gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    fixed_z = torch.randn(cfg.train.num_samples, cfg.model.z_dim, generator=gen).to(device)
    fixed_y = fixed_labels(len(fixed_z), data.num_classes, device) if cfg.model.conditional != "none" else None
    out = Path(out or cfg.train.out or default_out(cfg))
    return Run(cfg, out, data, G, D, G_ema, _adam(G.parameters(), cfg.g_optim), _adam(D.parameters(), cfg.d_optim),
               IndexSampler(len(data), cfg.train.batch_size, device), fixed_z, device,
               config.total_steps(cfg, len(data)), fixed_y)


# ---------------------------------------------------------------------------------------------------
# Checkpoints


def save_run(run: Run, path: Path | None = None) -> Path:
    """Write the full training state (weights, optimizers, RNG, data order) atomically."""
    tensors = checkpoint.with_prefix(run.G.state_dict(), "g") | checkpoint.with_prefix(run.D.state_dict(), "d")
    if run.G_ema is not None:
        tensors |= checkpoint.with_prefix(run.G_ema.state_dict(), "g_ema")
    og, og_json = checkpoint.optimizer_to_data(run.opt_g, "opt_g")
    od, od_json = checkpoint.optimizer_to_data(run.opt_d, "opt_d")
    perm, cursor = run.sampler.state()
    tensors |= og | od | {"rng.torch": torch.get_rng_state(), "sampler.perm": perm}
    if run.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(run.device)
    state = {"config": config.to_dict(run.cfg), "step": run.step, "opt_g": og_json, "opt_d": od_json,
             "sampler_cursor": cursor, "data_shape": list(run.data.shape), "data_kind": run.data.kind,
             "num_classes": run.data.num_classes, "ganforge_version": ganforge.__version__,
             "torch_version": torch.__version__}
    path = path or run.out / CHECKPOINT
    checkpoint.save(path, tensors, state)
    return path


def restore_run(run: Run, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Load a checkpoint's state into a freshly built run (same config)."""
    run.G.load_state_dict(checkpoint.prefixed(tensors, "g"))
    run.D.load_state_dict(checkpoint.prefixed(tensors, "d"))
    if run.G_ema is not None:
        ema = checkpoint.prefixed(tensors, "g_ema")
        run.G_ema.load_state_dict(ema or run.G.state_dict())
    run.opt_g.load_state_dict(checkpoint.optimizer_from_data(tensors, state["opt_g"], "opt_g"))
    run.opt_d.load_state_dict(checkpoint.optimizer_from_data(tensors, state["opt_d"], "opt_d"))
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and run.device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], run.device)
    if state.get("sampler_cursor") is not None:
        run.sampler.load_state(tensors["sampler.perm"], state["sampler_cursor"])
    run.step = int(state["step"])


def resume(run_dir: str | Path, overrides: list[str] | None = None) -> Run:
    """Rebuild a run from its folder's checkpoint; `overrides` may change e.g. train.steps."""
    run_dir = Path(run_dir)
    tensors, state = checkpoint.load(run_dir / CHECKPOINT)
    cfg = config.apply_overrides(config.from_dict(state["config"]), overrides or [])
    run = build(cfg, out=run_dir)
    restore_run(run, tensors, state)
    return run


# ---------------------------------------------------------------------------------------------------
# Pictures


def save_picture(run: Run, path: Path, fixed: torch.Tensor | None = None) -> Path:
    """Picture the current samples: a grid for images, a histogram (1D) or scatter plot (2D).

    `fixed` is G's output for the fixed noise when the caller already has it (images are drawn from it).
    """
    from ganforge import viz

    G, data, cfg = run.sample_model, run.data, run.cfg
    title = f"{cfg.preset or cfg.data.name}, step {run.step}"
    if data.kind == "image":
        n = len(run.fixed_z)
        nrow = data.num_classes if run.fixed_y is not None else (math.isqrt(n) if math.isqrt(n) ** 2 == n else 0)
        images = fixed if fixed is not None else generate(G, run.fixed_z, run.fixed_y)
        return viz.save_grid(images, path, nrow=nrow, scale=2)
    gen = torch.Generator().manual_seed(cfg.train.seed + 2)
    z = torch.randn(cfg.train.hist_samples, cfg.model.z_dim, generator=gen).to(run.device)
    y = fixed_labels(len(z), data.num_classes, run.device) if run.fixed_y is not None else None
    values = generate(G, z, y).cpu().numpy()
    if data.kind == "1d":
        return viz.save_histogram(values, path, cfg.data.mean, cfg.data.std, title)
    real = data.x[:2000].cpu().numpy()
    centres = data.modes.cpu().numpy() if data.modes is not None else None
    return viz.save_scatter(values[:2500], path, real, centres, title)


# ---------------------------------------------------------------------------------------------------
# The loop


def _grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return torch.cat(grads).norm() if grads else torch.zeros(())


@dataclass
class Recipe:
    """What the D and G steps need from the config, resolved once per `train` call."""

    cfg: Config
    loss: GANLoss
    autocast: torch.autocast  # bf16 autocast, or a disabled one
    labels: bool  # conditional: G and D see labels
    acgan: bool  # D has a class head (AC-GAN)
    reg: Regularizer | None  # gradient penalty, or None

    def d_in(self, x: torch.Tensor, std: float) -> torch.Tensor:
        """What D sees of real or generated data: DiffAugment, instance noise, PacGAN packing."""
        return pack(instance_noise(diff_augment(x, self.cfg.train.augment), std), self.cfg.model.pack)

    def d_out(self, D: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Adversarial logits (B/pack,) and, for acgan, class logits (B, K)."""
        if self.acgan:
            return D.forward_aux(x)
        return (D(x, y) if self.labels else D(x)), None

    def g_out(self, G: nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return G(z, y) if self.labels else G(z)


def recipe(cfg: Config, device: torch.device) -> Recipe:
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16")
    return Recipe(cfg, make_loss(cfg.loss), autocast, cfg.model.conditional != "none",
                  cfg.model.conditional == "acgan", REGULARIZERS.get(cfg.loss.regularizer))


def d_step(run: Run, r: Recipe, std: float, i: int, grad_norm: bool) -> dict:
    """One D update: a real batch against detached fakes (labels for G uniform over the classes)."""
    cfg, D, bs = run.cfg, run.D, run.cfg.train.batch_size
    idx = run.sampler.next()
    real, y_real = run.data.x[idx], (run.data.y[idx] if r.labels else None)  # (B, *shape), (B,)
    z = torch.randn(bs, cfg.model.z_dim, device=run.device)
    y_fake = sample_labels(bs, run.data.num_classes, run.device) if r.labels else None
    with r.autocast:
        with torch.no_grad():
            fake = r.g_out(run.G, z, y_fake)
        real_in, fake_in = r.d_in(real, std), r.d_in(fake, std)  # (B/pack, pack * s0, ...)
        (d_real, cls_real), (d_fake, cls_fake) = r.d_out(D, real_in, y_real), r.d_out(D, fake_in, y_fake)
        loss_d = r.loss.d(d_real.float(), d_fake.float(), cfg.loss.label_smoothing)
        if r.acgan:  # Odena et al. 2017: D also classifies real data, and (aux_fake) generated data
            aux = F.cross_entropy(cls_real.float(), y_real)
            if cfg.loss.aux_fake:
                aux = aux + F.cross_entropy(cls_fake.float(), y_fake)
            loss_d = loss_d + cfg.loss.aux_weight * aux
    k = cfg.loss.reg_every
    if r.reg is not None and (run.step * cfg.train.d_steps + i) % k == 0:  # lazy: every k-th D step, x k
        penalty = r.reg.fn(D, real_in.float(), fake_in.float(), y_real, y_fake)  # fp32, no autocast
        loss_d = loss_d + r.reg.scale * cfg.loss.gamma * k * penalty
    run.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    gn = _grad_norm(D) if grad_norm else None
    run.opt_d.step()
    return {"loss_d": loss_d.detach(), "d_real": d_real.detach(), "d_fake": d_fake.detach(), "real": real,
            "y_real": y_real, "grad_norm_d": gn}


def g_step(run: Run, r: Recipe, std: float, real: torch.Tensor, y_real: torch.Tensor | None,
           grad_norm: bool) -> dict:
    """One G update on fresh noise, D frozen so only G's weights get gradients; then the EMA."""
    cfg, D, bs = run.cfg, run.D, run.cfg.train.batch_size
    D.requires_grad_(False)
    z = torch.randn(bs, cfg.model.z_dim, device=run.device)
    y_g = sample_labels(bs, run.data.num_classes, run.device) if r.labels else None
    with r.autocast:
        g_fake, cls_fake = r.d_out(D, r.d_in(r.g_out(run.G, z, y_g), std), y_g)
        d_real_g = r.d_out(D, r.d_in(real, std), y_real)[0].float() if r.loss.needs_real_for_g else None
        loss_g = r.loss.g(g_fake.float(), d_real_g)
        if r.acgan:  # G makes samples that D classifies as the labels they were drawn with
            loss_g = loss_g + cfg.loss.aux_weight * F.cross_entropy(cls_fake.float(), y_g)
    run.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    gn = _grad_norm(run.G) if grad_norm else None
    run.opt_g.step()
    D.requires_grad_(True)
    if run.G_ema is not None:
        _ema_update(run.G_ema, run.G, cfg.model.ema if run.step + 1 > cfg.model.ema_start else 0.0)
    return {"loss_g": loss_g.detach(), "grad_norm_g": gn}


def train(cfg: Config | None = None, run: Run | None = None, progress: str | None = None) -> Run:
    """Train until `run.total` G updates; give `cfg` for a new run or `run` to continue one."""
    run = run or build(cfg)
    cfg, t = run.cfg, run.cfg.train
    r = recipe(cfg, run.device)
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "config.toml").write_text(config.dump_toml(cfg))
    log = _open_log(run.out / "metrics.jsonl", run.step)
    bar = Progress(run.total, run.step, progress or t.progress)
    tb = tracking.open_writer(run.out, t.tensorboard)
    tb.text("config", config.dump_toml(cfg), run.step)
    doc = doctor.Doctor(config.to_dict(cfg), run.total) if t.doctor else None
    if doc is not None and run.step > 0:  # resumed: what the earlier part of the log showed is not news
        for rec in doctor.read_metrics(run.out):
            doc.observe(rec)
    acc = torch.zeros(4, device=run.device)  # running sums of loss_d, loss_g, D(x), D(G(z))
    n_acc, t_last, step_last = 0, time.perf_counter(), run.step
    run.G.train()
    run.D.train()

    while run.step < run.total:
        step = run.step + 1
        log_now = step % t.log_every == 0 or step == run.total
        if t.lr_decay != "none":
            _set_lr(run, lr_factor(t.lr_decay, t.lr_decay_start, run.step, run.total))
        std = noise_std(run.step, t.instance_noise, t.instance_noise_steps)
        for i in range(t.d_steps):
            d = d_step(run, r, std, i, log_now)
        g = g_step(run, r, std, d["real"], d["y_real"], log_now)
        run.step = step

        # ---- bookkeeping (tensors only; synchronise with the device at log steps)
        with torch.no_grad():
            d_real, d_fake = d["d_real"].float(), d["d_fake"].float()
            if r.loss.probability:
                d_real, d_fake = torch.sigmoid(d_real), torch.sigmoid(d_fake)
            acc += torch.stack([d["loss_d"], g["loss_g"], d_real.mean(), d_fake.mean()])
        n_acc += 1
        if log_now:
            now = time.perf_counter()
            vals = (acc / n_acc).tolist()
            rec = {"step": step, "loss_d": vals[0], "loss_g": vals[1], "d_real": vals[2], "d_fake": vals[3],
                   "grad_norm_d": d["grad_norm_d"].item(), "grad_norm_g": g["grad_norm_g"].item(),
                   "lr_d": run.opt_d.param_groups[0]["lr"], "lr_g": run.opt_g.param_groups[0]["lr"],
                   "steps_per_s": (step - step_last) / (now - t_last), "time": time.time()}
            acc.zero_()
            n_acc, t_last, step_last = 0, now, step
            _record(rec, log, tb, doc, bar)
            if not all(math.isfinite(v) for v in vals):
                bar.close()
                log.close()
                tb.close()
                raise TrainingDiverged(step, run.out / CHECKPOINT)
        bar.update(step)
        if t.sample_every and step % t.sample_every == 0 or step == run.total:
            pictured = generate(run.sample_model, run.fixed_z, run.fixed_y)  # drawn once: picture and stats
            tb.image(step, "samples", save_picture(run, run.out / "samples" / f"step_{step:06d}.png", pictured))
            stats = {"step": step} | doctor.diversity(pictured, run.data.x) | _classes_produced(run, pictured)
            _record(stats, log, tb, doc, bar)
        eval_now = cfg.eval.every and (step % cfg.eval.every == 0 or step == run.total)
        if t.ckpt_every and step % t.ckpt_every == 0 or step == run.total or eval_now:
            save_run(run)
        if eval_now:  # measured on the checkpoint just written, exactly as `ganforge eval` would
            _record(evaluate_run(run), log, tb, doc, bar)

    bar.close()
    log.close()
    tb.close()
    pics = sample_pictures(run.out / "samples")
    if t.animation and len(pics) > 1:
        make_animation(pics, run.out / "samples.gif")
    return run


def _record(rec: dict, log, tb, doc: doctor.Doctor | None, bar: Progress) -> None:
    """Write a record to metrics.jsonl and TensorBoard, show it, and let the doctor look at it."""
    _write(log, rec)
    tb.scalars(rec["step"], rec)
    if "loss_d" in rec:
        bar.log(rec)
    elif any(k.startswith("eval/") for k in rec):
        bar.log_eval(rec)
    for f in doc.observe(rec) if doc is not None else []:
        bar.message(doctor.format_finding(f))
        _write(log, {"step": rec["step"], "doctor": f.to_dict()})


class TrainingDiverged(RuntimeError):
    """Losses became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, step: int, ckpt: Path):
        kept = f"the last good checkpoint ({ckpt}) is kept" if ckpt.exists() else "no checkpoint had been written"
        super().__init__(f"training diverged at step {step}: a loss became NaN or infinite; {kept}. "
                         "Try a lower learning rate, a gradient penalty, or spectral norm on D.")


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

    e = run.cfg.eval
    result = evaluate(run.out, metrics=e.metrics or None, n=e.n, seed=run.cfg.train.seed)
    values = {k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))}
    rec = {"step": run.step} | {f"eval/{k}": v for k, v in values.items()}
    if e.best and e.best in values:
        sign = 1 if e.best in config.HIGHER_IS_BETTER else -1
        best_path = run.out / "best.json"
        best = json.loads(best_path.read_text()) if best_path.exists() else None
        if best is None or sign * values[e.best] > sign * best["value"]:
            shutil.copyfile(run.out / CHECKPOINT, run.out / "best.safetensors.tmp")
            os.replace(run.out / "best.safetensors.tmp", run.out / "best.safetensors")
            best_path.write_text(json.dumps({"metric": e.best, "value": values[e.best], "step": run.step}) + "\n")
            rec["best"] = True
    return rec


def lr_factor(kind: str, start: float, step: int, total: int) -> float:
    """Multiplier of the base learning rates before G update `step + 1`: 1 until `start`, then to 0."""
    t = max(0.0, (step / total - start) / (1.0 - start))
    return 1.0 - t if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))


def _set_lr(run: Run, factor: float) -> None:
    # derived from the step alone, so a resumed run follows the same schedule
    for opt, o in ((run.opt_g, run.cfg.g_optim), (run.opt_d, run.cfg.d_optim)):
        for group in opt.param_groups:
            group["lr"] = o.lr * factor


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters and float buffers; other buffers are copied.

    Averaging batch-norm running statistics too keeps them matched to the averaged weights (copying the
    live G's statistics into G_ema made its samples worse).
    """
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm, 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        if be.is_floating_point():
            be.lerp_(bm, 1.0 - decay)
        else:
            be.copy_(bm)


def _open_log(path: Path, step: int):
    """Open metrics.jsonl for appending, first dropping records past `step` (a resumed crash)."""
    if path.exists() and step >= 0:
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
        path.write_text("".join(ln + "\n" for ln in keep))
    return open(path, "a", buffering=1)


def _write(log, rec: dict) -> None:
    log.write(json.dumps(rec) + "\n")


def main_message(run: Run) -> str:
    """What `ganforge train` prints at the end: where the outputs are."""
    pics = sorted((run.out / "samples").glob("step_*.png"))
    lines = [f"run folder:  {run.out}", f"checkpoint:  {run.out / CHECKPOINT}"]
    if pics:
        lines.append(f"samples:     {pics[-1]}")
    lines.append(f"metrics:     {run.out / 'metrics.jsonl'}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the ganforge command: ganforge train --help")
