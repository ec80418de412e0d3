"""The training loop: D step(s), G step, EMA, log, sample pictures, checkpoint.

`train(cfg)` is the whole program behind `ganforge train`; `build(cfg)` makes the objects it uses,
so tests and users can build and inspect them (or pass their own G and D).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
import types
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import ganforge
from ganforge import checkpoint, config, distributed, rng
from ganforge.augment import diff_augment, instance_noise, noise_std
from ganforge.config import Config, ConfigError
from ganforge.data import Dataset, IndexSampler, family_from_state, load_dataset
from ganforge.data.batches import InMemoryBatches, StreamedBatches
from ganforge.data.user import check_same_source, save_in_run
from ganforge.losses import GANLoss, make_loss
from ganforge.models import check_interface
from ganforge.models.layers import pack
from ganforge.outputs import CHECKPOINT, NullOutput, RunOutput, evaluate_run  # noqa: F401 (re-exported)
from ganforge.regularizers import REGULARIZERS, Regularizer
from ganforge.runlock import RunLock


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
    batches: InMemoryBatches  # real batches drawn by `sampler` (in memory, or StreamedBatches from disk)
    fixed_z: torch.Tensor  # (num_samples, z_dim): the same latent points pictured at every interval
    device: torch.device
    total: int  # G updates to reach
    rng: rng.RunRandom  # the run's own random streams (saved in checkpoints)
    fixed_y: torch.Tensor | None = None  # (num_samples,) labels pictured with fixed_z (conditional runs)
    step: int = 0
    init_from: str = ""  # the run or G file its weights started from (ganforge train --init), or ''
    log_sums: torch.Tensor | None = None  # (4,) sums of loss_d, loss_g, D(x), D(G(z)) since the last log step
    log_count: int = 0  # G updates summed in log_sums (saved, so a resumed run logs the same averages)
    rollbacks: int = 0  # times train.on_nan = "rollback" went back to the last checkpoint
    mle_steps: int = 0  # the first steps train G by maximum likelihood alone (train.mle_steps, cut by max_epochs)
    par: distributed.Parallel | None = None  # rank, world size, and DDP(G), DDP(D) that train (set by build)

    @property
    def sample_model(self) -> nn.Module:
        """The generator to sample and evaluate: G_ema when EMA is on."""
        return self.G_ema if self.G_ema is not None else self.G


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """train.device as a torch.device: 'auto' is CUDA when available, else CPU.

    Under torchrun (`local_rank` given) each process takes its own GPU: 'auto' and 'cuda' mean cuda:LOCAL_RANK.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: '{name}' requested but CUDA is not available (use cpu or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"train.device: '{name}' but this machine has {torch.cuda.device_count()} CUDA devices "
                          f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"train.device: '{name}' requested but Apple's MPS is not available (use cpu or auto)")
    if dev.type == "cuda" and local_rank is not None:
        if dev.index is not None:
            raise ConfigError(f"train.device: '{name}' names one GPU for every process; under torchrun use "
                              "'cuda' or 'auto' (each process takes cuda:LOCAL_RANK)")
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank}: this machine has {torch.cuda.device_count()} CUDA devices "
                              "(start at most that many processes per machine)")
        dev = torch.device("cuda", local_rank)
    return dev


def _check_eval_family(cfg: Config, family: str) -> None:
    """eval.metrics and eval.best must measure this data family (known only once the data is loaded)."""
    from ganforge.metrics.registry import METRICS, providers

    for m in cfg.eval.metrics:
        if family not in METRICS[m].families:
            raise ConfigError(f"eval.metrics: {m} measures {' or '.join(METRICS[m].families)}, not {family} data")
    offered = [m for m in providers(cfg.eval.best) if family in METRICS[m].families]
    if cfg.eval.best and not offered:
        who = "; ".join(f"{m} measures {' or '.join(METRICS[m].families)}" for m in providers(cfg.eval.best))
        raise ConfigError(f"eval.best: '{cfg.eval.best}' is not measured on {family} data ({who})")


def _adam(params, o: config.OptimConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)


def default_out(cfg: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.preset or cfg.data.name}-{stamp}"


def build(cfg: Config, out: str | Path | None = None, G: nn.Module | None = None,
          D: nn.Module | None = None, data=None, family_state: dict | None = None,
          saved: Config | None = None) -> Run:
    """Load data, build (or take) G and D, their optimizers, the batch sampler and the run's random streams.

    `data` replaces cfg.data: a path (a folder, .zip, .npy or .npz), or data in memory (a tensor, an array or a
    Dataset), which is saved with the run as RUN/data.npz and read from there, so `ganforge eval`, `--resume`
    and `eval.every` see exactly the data training saw.

    Nothing here moves torch's global random stream: G and D are initialised from `train.seed` inside a
    forked stream, and every draw of training comes from the run's own generators (`rng.RunRandom`).
    Under torchrun this process joins the process group and G, D are wrapped in DDP (distributed.py).
    `family_state` (a checkpoint's) makes tables and text reuse what the run learned from the data (its
    transform, its vocabulary) instead of learning it again.
    """
    if data is not None:  # read through data.path like any user data, so eval and resume find it again
        if isinstance(data, (str, Path)):
            path = str(Path(data).expanduser().resolve())
        else:
            out = Path(out or cfg.train.out or default_out(cfg))
            path = save_in_run(data, out)
        cfg = config.apply_overrides(cfg, [f"data.path={json.dumps(path)}"])
        data = None
    config.validate(cfg, unchosen=saved)  # saved: a resumed run's config, whose values were checked when it began
    par = distributed.from_env()
    device = resolve_device(cfg.train.device, par.local_rank if par.world > 1 else None)
    distributed.check(cfg, par, device)
    distributed.init(par, device)
    if data is None:
        with distributed.local_rank_0_first(par):  # one process per machine downloads and caches
            data = load_dataset(cfg.data, seed=cfg.train.seed, state=family_state)
    data = data.to(device)
    family = data.family
    if cfg.train.xflip and not family.augmentable:
        raise ConfigError(f"train.xflip: flips need image data; {data.name} is {family.name} data")
    if cfg.model.conditional != "none" and (data.y is None or data.num_classes < 2):
        raise ConfigError(f"model.conditional: '{cfg.model.conditional}' needs labelled data; "
                          f"{data.name} has no labels")
    family.check_config(cfg, data)
    _check_eval_family(cfg, family.name)
    for net, who in ((G, "G"), (D, "D")):
        if net is not None:
            check_interface(net, who)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        G = (G or family.generator(cfg.model, data.shape, data.num_classes, data.meta)).to(device)
        D = (D or family.discriminator(cfg.model, data.shape, data.num_classes, data.meta)).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.model.ema > 0 else None
    if cfg.model.sync_bn:
        G, D = distributed.sync_batchnorm(G, par), distributed.sync_batchnorm(D, par)
    par.G, par.D = distributed.wrap(G, device, par), distributed.wrap(D, device, par)
    # The fixed noise has its own generator so pictures never disturb the training random streams.
    gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    fixed_z = torch.randn(family.picture_count(cfg), cfg.model.z_dim, generator=gen).to(device)
    fixed_y = family.fixed_labels(data, len(fixed_z), cfg, device)
    out = Path(distributed.broadcast_text(str(out or cfg.train.out or default_out(cfg)), device))  # rank 0's
    streams = rng.RunRandom(cfg.train.seed, device, par.rank, par.world)
    batch = cfg.train.batch_size if family.indexed else min(cfg.train.batch_size, len(data))  # (tables: unused)
    sampler = IndexSampler(len(data), batch, device if not data.streamed else "cpu", cfg.train.seed)
    batches = family.batches(data, sampler, streams, cfg, device)
    return Run(cfg, out, data, G, D, G_ema, _adam(G.parameters(), cfg.g_optim), _adam(D.parameters(), cfg.d_optim),
               sampler, batches, fixed_z, device, config.total_steps(cfg, len(data)), streams, fixed_y, par=par,
               mle_steps=config.mle_steps(cfg, len(data)))


# ---------------------------------------------------------------------------------------------------
# Checkpoints


def save_run(run: Run, path: Path | None = None) -> Path:
    """Write the full training state (weights, optimizers, RNG, data order) atomically."""
    tensors = checkpoint.with_prefix(run.G.state_dict(), "g") | checkpoint.with_prefix(run.D.state_dict(), "d")
    if run.G_ema is not None:
        tensors |= checkpoint.with_prefix(run.G_ema.state_dict(), "g_ema")
    og, og_json = checkpoint.optimizer_to_data(run.opt_g, "opt_g")
    od, od_json = checkpoint.optimizer_to_data(run.opt_d, "opt_d")
    tensors |= og | od | run.rng.state()
    state = {"config": config.to_dict(run.cfg), "step": run.step, "opt_g": og_json, "opt_d": od_json,
             "sampler": run.sampler.state(), "data_shape": list(run.data.shape), "family": run.data.family.name,
             "num_classes": run.data.num_classes, "class_names": run.data.class_names,
             "data_source": run.data.source, "family_state": run.data.meta, "init_from": run.init_from,
             "log_count": run.log_count, "rollbacks": run.rollbacks,
             "ganforge_version": ganforge.__version__, "torch_version": torch.__version__}
    if run.log_sums is not None:
        tensors["log.sums"] = run.log_sums
    path = path or run.out / CHECKPOINT
    checkpoint.save(path, tensors, state)
    return path


def restore_run(run: Run, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Load a checkpoint's state into a freshly built run (same config); tensors must match the built nets."""
    for prefix, net in (("g", run.G), ("d", run.D)):
        checkpoint.check_tensors(checkpoint.prefixed(tensors, prefix), checkpoint.state_dict_spec(net),
                                 f"{run.out / CHECKPOINT}: {'generator' if prefix == 'g' else 'discriminator'}")
    run.G.load_state_dict(checkpoint.prefixed(tensors, "g"))
    run.D.load_state_dict(checkpoint.prefixed(tensors, "d"))
    if run.G_ema is not None:
        ema = checkpoint.prefixed(tensors, "g_ema")
        if ema:
            checkpoint.check_tensors(ema, checkpoint.state_dict_spec(run.G_ema), f"{run.out / CHECKPOINT}: G_ema")
        run.G_ema.load_state_dict(ema or run.G.state_dict())
    run.opt_g.load_state_dict(checkpoint.optimizer_from_data(tensors, state["opt_g"], "opt_g"))
    run.opt_d.load_state_dict(checkpoint.optimizer_from_data(tensors, state["opt_d"], "opt_d"))
    run.rng.load_state(tensors)
    if "sampler" in state:  # schema 1 files kept their epoch's order as a tensor
        run.sampler.load_state(state["sampler"], tensors.get("sampler.perm"))
    run.step = int(state["step"])
    run.init_from = state.get("init_from", "")
    # older checkpoints kept no log window: the first average after resuming then covers fewer steps
    sums = tensors.get("log.sums")
    run.log_sums = sums.to(run.device) if sums is not None else None
    run.log_count = int(state.get("log_count", 0)) if sums is not None else 0
    run.rollbacks = int(state.get("rollbacks", 0))


def resume(run_dir: str | Path, overrides: list[str] | None = None) -> Run:
    """Rebuild a run from its folder's checkpoint; `overrides` may change e.g. train.steps."""
    run_dir = Path(run_dir)
    tensors, state = checkpoint.load(run_dir / CHECKPOINT)
    family_from_state(state)
    saved = config.from_saved(state["config"])
    cfg = config.apply_overrides(saved, overrides or [], unchosen=saved)
    run = build(cfg, out=run_dir, family_state=state.get("family_state") or None, saved=saved)
    check_same_source(state.get("data_source") or {}, run.data, "--resume")
    restore_run(run, tensors, state)
    return run


# ---------------------------------------------------------------------------------------------------
# The loop


def _finite(run: Run, sums: torch.Tensor | None = None) -> bool:
    """Whether every weight and float buffer of G, D (and G_ema), and `sums` (the losses since the last log), is
    finite; one synchronisation with the device."""
    nets = [run.G, run.D] + ([run.G_ema] if run.G_ema is not None else [])
    flags = [torch.isfinite(t).all() for net in nets for t in (*net.parameters(), *net.buffers())
             if t.is_floating_point()]
    if sums is not None:
        flags.append(torch.isfinite(sums).all())
    return bool(torch.stack(flags).all())


def _grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return torch.cat(grads).norm() if grads else torch.zeros(())


@dataclass
class Recipe:
    """What the D and G steps need from the config, resolved once per `train` call."""

    cfg: Config
    loss: GANLoss
    autocast: torch.autocast  # bf16 autocast, or a disabled one
    reg: Regularizer | None  # gradient penalty, or None

    def d_in(self, x: torch.Tensor, std: float, g: rng.RunRandom) -> torch.Tensor:
        """What D sees of real or generated data: DiffAugment, instance noise, PacGAN packing."""
        x = instance_noise(diff_augment(x, self.cfg.train.augment, g["augment"]), std, g["augment"])
        return pack(x, self.cfg.model.pack)


def recipe(cfg: Config, device: torch.device) -> Recipe:
    """The loss, autocast and penalty of `cfg`, looked up once."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16")
    return Recipe(cfg, make_loss(cfg.loss), autocast, REGULARIZERS.get(cfg.loss.regularizer))


def _noise_and_labels(run: Run) -> tuple[torch.Tensor, torch.Tensor | None]:
    """G's input, this rank's share of one global batch from the run's streams: z (B, z_dim) and what G is
    conditioned on (labels uniform over the classes, a table's condition vectors, or None): the family's call."""
    bs = run.cfg.train.batch_size
    z = run.rng.randn("noise", bs, run.cfg.model.z_dim)
    return z, run.data.family.fake_labels(run, bs)


def d_step(run: Run, r: Recipe, std: float, i: int, grad_norm: bool) -> dict:
    """One D update: a real batch against detached fakes (labels for G uniform over the classes).

    D's passes go through run.par.D (DDP under torchrun: its backward averages D's gradients over the
    ranks); G's pass takes no gradient, so it uses the bare G.
    """
    cfg, D = run.cfg, run.par.D
    real, y_real = run.batches.next()  # (B, *shape), (B,) or None: D ignores labels it does not use
    z, y_fake = _noise_and_labels(run)
    with r.autocast:
        with torch.no_grad():
            fake = run.G(z, y_fake)
        real_in, fake_in = r.d_in(real, std, run.rng), r.d_in(fake, std, run.rng)  # (B/pack, pack * s0, ...)
        (d_real, cls_real), (d_fake, cls_fake) = D(real_in, y_real), D(fake_in, y_fake)
        loss_d = r.loss.d(d_real.float(), d_fake.float(), cfg.loss.label_smoothing)
        if cls_real is not None:  # AC-GAN (Odena et al. 2017): D also classifies real data, and (aux_fake) fakes
            aux = F.cross_entropy(cls_real.float(), y_real)
            if cfg.loss.aux_fake:
                aux = aux + F.cross_entropy(cls_fake.float(), y_fake)
            loss_d = loss_d + cfg.loss.aux_weight * aux
    k = cfg.loss.reg_every
    if r.reg is not None and (run.step * cfg.train.d_steps + i) % k == 0:  # lazy: every k-th D step, x k
        penalty = r.reg.fn(D, real_in.float(), fake_in.float(), y_real, y_fake, run.rng)  # fp32
        loss_d = loss_d + r.reg.scale * cfg.loss.gamma * k * penalty
    run.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    gn = _grad_norm(run.D) if grad_norm else None
    run.opt_d.step()
    return {"loss_d": loss_d.detach(), "d_real": d_real.detach(), "d_fake": d_fake.detach(), "real": real,
            "y_real": y_real, "grad_norm_d": gn}


def g_step(run: Run, r: Recipe, std: float, real: torch.Tensor, y_real: torch.Tensor | None,
           grad_norm: bool) -> dict:
    """One G update on fresh noise, D frozen so only G's weights get gradients; then the EMA.

    G's pass goes through run.par.G (DDP under torchrun); D's through the bare D: frozen here, it has no
    gradient for DDP to average.
    """
    cfg, D = run.cfg, run.D
    D.requires_grad_(False)
    z, y_g = _noise_and_labels(run)
    with r.autocast:
        g_fake, cls_fake = D(r.d_in(run.par.G(z, y_g), std, run.rng), y_g)
        d_real_g = D(r.d_in(real, std, run.rng), y_real)[0].float() if r.loss.needs_real_for_g else None
        loss_g = r.loss.g(g_fake.float(), d_real_g)
        if cls_fake is not None:  # AC-GAN: G makes samples that D classifies as the labels they were drawn with
            loss_g = loss_g + cfg.loss.aux_weight * F.cross_entropy(cls_fake.float(), y_g)
        extra = run.data.family.g_loss(run, y_g)  # tables: G honours its condition (CTGAN's cross-entropy)
        if extra is not None:
            loss_g = loss_g + extra
        if cfg.loss.mle_weight:  # text's LSTM G: its NLL of the real batch keeps it close to the lines
            loss_g = loss_g + cfg.loss.mle_weight * run.data.family.nll(run, real)
    run.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    gn = _grad_norm(run.G) if grad_norm else None
    run.opt_g.step()
    D.requires_grad_(True)
    _ema_step(run)
    return {"loss_g": loss_g.detach(), "grad_norm_g": gn}


def mle_step(run: Run, grad_norm: bool) -> tuple[dict, dict]:
    """One G update by maximum likelihood on a real batch, D untouched (train.mle_steps: text's LSTM G learns the
    lines before D trains it). Returns the (d, g) records of a GAN step, D's values zero."""
    real, y_real = run.batches.next()
    loss = run.data.family.nll(run, real)
    run.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    gn = _grad_norm(run.G) if grad_norm else None
    run.opt_g.step()
    _ema_step(run)
    zero = torch.zeros((), device=run.device)
    d = {"loss_d": zero, "d_real": zero, "d_fake": zero, "real": real, "y_real": y_real,
         "grad_norm_d": zero if grad_norm else None}
    return d, {"loss_g": loss.detach(), "grad_norm_g": gn}


MAX_ROLLBACKS = 3  # train.on_nan = "rollback": returns to the last checkpoint before training stops


def train(cfg: Config | None = None, run: Run | None = None, progress: str | None = None,
          output: NullOutput | None = None, data=None) -> Run:
    """Train until `run.total` G updates; give `cfg` for a new run or `run` to continue one.

    `data` (a path, a tensor, an array or a Dataset) replaces cfg.data, as in `build`.

    Everything written or shown goes through `output` (default: a `RunOutput` in the run folder). Called in
    the main thread, SIGINT and SIGTERM stop training after the current step and a checkpoint: then
    `TrainingStopped` is raised, a SystemExit with code 130 or 143, so `ganforge train` exits as shells expect.
    """
    run = run or build(cfg, data=data)
    r = recipe(run.cfg, run.device)
    stopped = None
    with contextlib.ExitStack() as stack:
        if output is None:
            if run.par is None or run.par.main:  # the run folder is ours alone while we write into it
                lock = stack.enter_context(RunLock(run.out))
                output = RunOutput(run, progress)
                if lock.message:
                    output.message(lock.message)
            if run.par is not None:  # under torchrun: rank 0 writes, logs averaged over ranks; others write nothing
                output = distributed.output_for(run, output)
        finished = False
        try:
            if run.step > 0:  # resumed
                _restart_batches(run)  # a streamed run's loader began reading ahead before the checkpoint moved it
                if run.cfg.train.lr_decay == "none":  # the config's rates (e.g. --set g_optim.lr=...), not the
                    _set_lr(run, 1.0)  # ones the optimizers' saved state brought back
            output.on_start(run)
            _say_plan(run, output)
            if run.cfg.train.on_nan == "rollback" and run.step == 0 and not (run.out / CHECKPOINT).exists():
                output.on_checkpoint(run, False)  # somewhere to go back to before the first periodic checkpoint
            with StopSignals() as stop:
                _loop(run, r, output, stop)
            finished = run.step >= run.total
            if not finished:  # _loop returned early: a signal, after the step's checkpoint
                stopped = TrainingStopped(stop.signum, run.step, run.out)
        finally:
            output.close(run, finished)
            run.batches.close()
    if stopped is not None:
        if isinstance(output, RunOutput):  # shown whatever train.progress says: it answers the user's Ctrl-C
            print(stopped, file=sys.stderr, flush=True)
        raise stopped
    return run


def _say_plan(run: Run, out: NullOutput) -> None:
    """One line where the run is not what train.steps says: cut by train.max_epochs, or all maximum likelihood."""
    t = run.cfg.train
    if t.max_epochs and 0 < run.total < t.steps and run.step < run.total:  # (a run by train.epochs asks no steps)
        likelihood = f"; the first {run.mle_steps:,} by maximum likelihood" if run.mle_steps else ""
        out.message(f"train.max_epochs = {t.max_epochs:g} caps this run at {run.total:,} steps ({t.max_epochs:g} "
                    f"passes over {len(run.data):,} examples at batch {t.batch_size}; train.steps asked {t.steps:,})"
                    + likelihood)
    if run.step < run.total <= run.mle_steps:
        out.message(f"train.mle_steps = {run.mle_steps} covers all {run.total} steps: G learns by maximum "
                    "likelihood alone and D never trains")


def _loop(run: Run, r: Recipe, out: NullOutput, stop: StopSignals | None = None) -> None:
    """The steps from run.step to run.total, calling the output's hooks; returns early, after a checkpoint,
    once `stop` has caught a signal."""
    if run.log_sums is None:  # the running sums since the last log step (a resumed run continues its own)
        run.log_sums, run.log_count = torch.zeros(4, device=run.device), 0
    t_last, step_last = time.perf_counter(), run.step
    run.G.train()
    run.D.train()
    while run.step < run.total:
        cfg, t = run.cfg, run.cfg.train  # (a rollback replaces the config: halved learning rates)
        step = run.step + 1
        log_now = step % t.log_every == 0 or step == run.total
        if t.lr_decay != "none":
            _set_lr(run, lr_factor(t.lr_decay, t.lr_decay_start, run.step, run.total))
        std = noise_std(run.step, t.instance_noise, t.instance_noise_steps)
        with run.rng.active():
            if step <= run.mle_steps:  # text's LSTM G: maximum likelihood first, D waits
                d, g = mle_step(run, log_now)
            else:
                for i in range(t.d_steps):
                    d = d_step(run, r, std, i, log_now)
                g = g_step(run, r, std, d["real"], d["y_real"], log_now)
        run.step = step

        # ---- bookkeeping (tensors only; synchronise with the device only before writing something)
        with torch.no_grad():
            d_real, d_fake = d["d_real"].float(), d["d_fake"].float()
            if r.loss.probability:
                d_real, d_fake = torch.sigmoid(d_real), torch.sigmoid(d_fake)
            run.log_sums += torch.stack([d["loss_d"], g["loss_g"], d_real.mean(), d_fake.mean()])
        run.log_count += 1
        sample_now = bool(t.sample_every) and step % t.sample_every == 0 or step == run.total
        eval_now = bool(cfg.eval.every) and (step % cfg.eval.every == 0 or step == run.total)
        ckpt_now = bool(t.ckpt_every) and step % t.ckpt_every == 0 or step == run.total or eval_now
        writes = log_now or sample_now or ckpt_now
        # NaN or inf anywhere (losses since the last log, weights) is caught before anything is written
        if writes and not _finite(run, run.log_sums):
            _diverged(run, out, step)  # raises, or rolls back to the last checkpoint
            t_last, step_last = time.perf_counter(), run.step
            continue

        # ---- outputs
        if log_now:
            now = time.perf_counter()
            rec = _log_record(run, d, g) | {"steps_per_s": (step - step_last) / (now - t_last), "time": time.time()}
            t_last, step_last = now, step
            out.on_log(run, rec)
        out.on_step(run)
        if sample_now:
            out.on_sample(run)
        if ckpt_now:
            out.on_checkpoint(run, eval_now)

        # ---- a stop signal (caught at any point of this step): this step's checkpoint, then return
        if stop is not None and stop.signum is not None and step < run.total:
            if not ckpt_now:
                if not writes and not _finite(run, run.log_sums):
                    _diverged(run, out, step)
                    continue  # rolled back: the next step stops
                out.on_checkpoint(run, False)
            return


def _restart_batches(run: Run) -> None:
    """Streamed batches: restart the loader from the sampler's position (its workers read ahead from where the
    sampler was when it started, so after a restore or a rollback they would hand out the wrong batches)."""
    if isinstance(run.batches, StreamedBatches):
        run.batches.close()
        run.batches = StreamedBatches(run.data, run.sampler, run.rng, run.cfg.train.xflip, device=run.device)


def _log_record(run: Run, d: dict, g: dict) -> dict:
    """The metrics.jsonl record of this log step: averages over the steps since the last one (then reset)."""
    vals = (run.log_sums / run.log_count).tolist()
    run.log_sums.zero_()
    run.log_count = 0
    mle = {"mle": True} if run.step <= run.mle_steps else {}  # loss_g is G's NLL, D untouched
    return mle | {"step": run.step, "loss_d": vals[0], "loss_g": vals[1], "d_real": vals[2], "d_fake": vals[3],
            "grad_norm_d": d["grad_norm_d"].item(), "grad_norm_g": g["grad_norm_g"].item(),
            "lr_d": run.opt_d.param_groups[0]["lr"], "lr_g": run.opt_g.param_groups[0]["lr"]}


def _diverged(run: Run, out: NullOutput, step: int) -> None:
    """NaN or inf at `step`: raise TrainingDiverged or, with train.on_nan = "rollback", restore the last
    checkpoint and halve both learning rates (at most MAX_ROLLBACKS times)."""
    path = run.out / CHECKPOINT
    if run.cfg.train.on_nan != "rollback" or not path.exists():
        raise TrainingDiverged(step, path)
    if run.rollbacks >= MAX_ROLLBACKS:
        raise TrainingDiverged(step, path, run.rollbacks)
    count = run.rollbacks + 1
    tensors, state = checkpoint.load(path)
    restore_run(run, tensors, state)  # weights, optimizers, random streams, data order, log window, step
    run.rollbacks = count
    if run.log_sums is None:
        run.log_sums, run.log_count = torch.zeros(4, device=run.device), 0
    cfg = copy.deepcopy(run.cfg)  # the caller's config stays as given; checkpoints save the halved rates
    cfg.g_optim.lr /= 2
    cfg.d_optim.lr /= 2
    run.cfg = cfg
    t = cfg.train
    _set_lr(run, lr_factor(t.lr_decay, t.lr_decay_start, run.step, run.total) if t.lr_decay != "none" else 1.0)
    _restart_batches(run)
    rec = {"step": run.step, "rollback": {"from_step": step, "count": count, "lr_g": cfg.g_optim.lr,
                                          "lr_d": cfg.d_optim.lr}}
    text = (f"step {step}: a loss or weight became NaN or infinite; rolled back to the checkpoint of step "
            f"{run.step} with the learning rates halved (G {cfg.g_optim.lr:g}, D {cfg.d_optim.lr:g}); "
            f"rollback {count} of {MAX_ROLLBACKS}")
    out.on_rollback(run, rec, text)


class TrainingDiverged(RuntimeError):
    """Losses or weights became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, step: int, ckpt: Path, rollbacks: int = 0):
        kept = f"the last good checkpoint ({ckpt}) is kept" if ckpt.exists() else "no checkpoint had been written"
        tried = f" after {rollbacks} rollbacks with halved learning rates" if rollbacks else ""
        hint = "" if rollbacks else ', or train.on_nan = "rollback"'
        super().__init__(f"training diverged at step {step}{tried}: a loss or weight became NaN or infinite; "
                         f"{kept}. Try a lower learning rate, a gradient penalty, or spectral norm on D{hint}.")


class TrainingStopped(SystemExit):
    """SIGINT or SIGTERM stopped training after a checkpoint; the exit code is 128 + the signal (130, 143)."""

    def __init__(self, signum: int, step: int, out: Path):
        super().__init__(128 + signum)
        self.signum, self.step = signum, step
        self.message = (f"stopped at step {step}: checkpoint written; continue with: "
                        f"ganforge train --resume {shlex.quote(str(out))}")

    def __str__(self) -> str:
        return self.message


class StopSignals:
    """While entered in the main thread, SIGINT and SIGTERM ask training to stop after the current step.

    `signum` is the first signal caught (None before). A second signal is answered "saving, please wait";
    a third raises KeyboardInterrupt at once (files are written atomically, so none is left half-written).
    The previous handlers are restored on exit; in other threads nothing is installed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self.count = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        previous, self._previous = self._previous, {}
        for s, handler in previous.items():  # None: installed outside Python; the default is the best guess
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 1:
            self.signum = signum
            _say(f"{signal.Signals(signum).name}: finishing this step, then writing a checkpoint")
        elif self.count == 2:
            _say("saving, please wait (signal once more to quit at once: the last complete checkpoint is kept)")
        else:
            self.__exit__()
            raise KeyboardInterrupt


def _say(text: str) -> None:
    """A line on stderr from a signal handler: one unbuffered write, so it never re-enters a buffered print."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.write(sys.stderr.fileno(), f"\n{text}\n".encode())

def lr_factor(kind: str, start: float, step: int, total: int) -> float:
    """Multiplier of the base learning rates before G update `step + 1`: 1 until `start`, then to 0."""
    t = max(0.0, (step / total - start) / (1.0 - start))
    return 1.0 - t if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))


def _set_lr(run: Run, factor: float) -> None:
    # derived from the step alone, so a resumed run follows the same schedule
    for opt, o in ((run.opt_g, run.cfg.g_optim), (run.opt_d, run.cfg.d_optim)):
        for group in opt.param_groups:
            group["lr"] = o.lr * factor


def _ema_step(run: Run) -> None:
    """After a G update: G_ema follows G (copies it before model.ema_start)."""
    if run.G_ema is not None:
        _ema_update(run.G_ema, run.G, run.cfg.model.ema if run.step + 1 > run.cfg.model.ema_start else 0.0)


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


def main_message(run: Run) -> str:
    """What `ganforge train` prints at the end: where the outputs are."""
    pics = sorted((run.out / "samples").glob("step_*.png"))
    lines = [f"run folder:  {run.out}", f"checkpoint:  {run.out / CHECKPOINT}"]
    if pics:
        lines.append(f"samples:     {pics[-1]}")
    lines.append(f"metrics:     {run.out / 'metrics.jsonl'}")
    return "\n".join(lines)


class _CallableModule(types.ModuleType):
    """`ganforge.train(cfg, data=df)` calls `ganforge.train.train`: the module is also the function users reach for."""

    def __call__(self, *args, **kwargs) -> Run:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the ganforge command: ganforge train --help")
