"""A standalone WGAN-GP text loop for finding the `text` preset's recipe on the census surnames.

It uses only what ganforge's training loop has (so the recipe maps onto config fields one to one): a loss
from ganforge.losses (wgan / hinge / bce), the WGAN-GP penalty of ganforge.regularizers weighted by gamma,
d_steps D updates per G update on fresh real batches (epoch-shuffled), Adam per net, an EMA of G's weights,
a linear learning-rate decay, and G in softmax or straight-through Gumbel mode. Every random draw comes
from one torch.Generator per purpose, seeded from the run's seed. Samples decode per position from
softmax(log p / T) and stop at the end token (models.text.decode_samples).

    OMP_NUM_THREADS=1 python benchmarks/text_recipe.py --steps 3000                  # the recipe in RECIPE
    OMP_NUM_THREADS=1 python benchmarks/text_recipe.py --minutes 8 --set train.d_steps=2 model.g.mode=gumbel
    ... --log benchmarks/text_trials.jsonl   # append one JSON line per trial (recipe, speed, metrics per T)
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable

import torch

from ganforge.data.text import prepare_text, surnames
from ganforge.losses import LOSSES
from ganforge.metrics.text import text_metrics
from ganforge.models.text import TextDiscriminator, TextGenerator, decode_samples
from ganforge.regularizers import wgan_gp_penalty

# The search's starting point, Gulrajani et al. 2017's recipe (at dim 128), named by the ganforge config fields
# it becomes (g_optim / d_optim: Adam of G and D); trials override it with --set. The chosen recipe is
# TEXT_RECIPE in benchmarks/text.py.
RECIPE: dict[str, object] = {
    "loss.name": "wgan",
    "loss.regularizer": "wgan-gp",
    "loss.gamma": 10.0,
    "loss.reg_every": 1,
    "train.d_steps": 5,
    "train.batch_size": 64,
    "train.steps": 3000,
    "train.lr_decay": "linear",
    "g_optim.lr": 1e-4, "g_optim.beta1": 0.5, "g_optim.beta2": 0.9,
    "d_optim.lr": 1e-4, "d_optim.beta1": 0.5, "d_optim.beta2": 0.9,
    "model.z_dim": 128,
    "model.g.channels": 128, "model.g.blocks": 5,
    "model.d.channels": 128, "model.d.blocks": 5,
    "model.g.mode": "softmax",
    "model.g.tau": 1.0,
    "model.ema": 0.999,
    "sample.temperature": 1.0,  # the default decoding temperature (0 = argmax)
}
TEMPERATURES = (0.0, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2)


def parse_set(items: list[str], recipe: dict) -> dict:
    """key=value overrides of the recipe; the value keeps the type of the default."""
    out = dict(recipe)
    for item in items:
        key, _, value = item.partition("=")
        if key not in out:
            raise SystemExit(f"--set: unknown recipe key '{key}'; known: {', '.join(out)}")
        kind = type(out[key])
        out[key] = kind(float(value)) if kind is int else kind(value)
    return out


def _adam(params, recipe: dict, net: str) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=recipe[f"{net}_optim.lr"],
                            betas=(recipe[f"{net}_optim.beta1"], recipe[f"{net}_optim.beta2"]))


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm, 1.0 - decay)


class Batches:
    """Epoch-shuffled one-hot batches (B, L, V) of the training rows, from a seeded generator."""

    def __init__(self, x: torch.Tensor, vocab_size: int, batch_size: int, generator: torch.Generator):
        self.x, self.v, self.bs, self.gen = x, vocab_size, batch_size, generator
        self.order, self.at = torch.empty(0, dtype=torch.long), 0

    def next(self) -> torch.Tensor:
        if self.at + self.bs > len(self.order):
            self.order, self.at = torch.randperm(len(self.x), generator=self.gen), 0
        idx = self.order[self.at : self.at + self.bs]
        self.at += self.bs
        return torch.nn.functional.one_hot(self.x[idx], self.v).float()  # (B, L, V)


def train_gan_prototype(x: torch.Tensor, vocab_size: int, recipe: dict, seed: int = 0, minutes: float = 0.0,
                        log: Callable[[str], None] = lambda s: print(s, flush=True)) -> tuple[TextGenerator, dict]:
    """Train G (returned: its EMA when model.ema > 0) on token rows x (N, L); stats: steps, seconds, steps/s.

    `minutes` caps the process's CPU time (one thread: the compute of one core, whatever else the machine runs).
    """
    r = recipe
    torch.manual_seed(seed)  # module initialisation only; every draw in the loop takes its own generator
    gens = {k: torch.Generator().manual_seed(seed * 100 + i) for i, k in
            enumerate(("data", "noise", "penalty", "gumbel"))}
    L = x.shape[1]
    G = TextGenerator(r["model.z_dim"], vocab_size, L, r["model.g.channels"], r["model.g.blocks"],
                      r["model.g.mode"], r["model.g.tau"])
    D = TextDiscriminator(vocab_size, L, r["model.d.channels"], r["model.d.blocks"])
    G_ema = copy.deepcopy(G).requires_grad_(False) if r["model.ema"] > 0 else None
    opt_g, opt_d = _adam(G.parameters(), r, "g"), _adam(D.parameters(), r, "d")
    loss = LOSSES[r["loss.name"]]
    batches = Batches(x, vocab_size, r["train.batch_size"], gens["data"])
    bs, steps = r["train.batch_size"], r["train.steps"]
    t0, c0, step = time.perf_counter(), time.process_time(), 0

    def fake(z):
        return G(z, generator=gens["gumbel"])

    while step < steps and not (minutes and time.process_time() - c0 > 60 * minutes):
        if r["train.lr_decay"] == "linear":
            for opt, net in ((opt_g, "g"), (opt_d, "d")):
                for group in opt.param_groups:
                    group["lr"] = r[f"{net}_optim.lr"] * (1.0 - step / steps)
        for i in range(r["train.d_steps"]):
            real = batches.next()
            with torch.no_grad():
                f = fake(torch.randn(bs, r["model.z_dim"], generator=gens["noise"]))
            d_real, d_fake = D(real)[0], D(f)[0]
            loss_d = loss.d(d_real, d_fake)
            k = r["loss.reg_every"]  # lazy regularisation: every k-th D step, weighted by k
            if r["loss.regularizer"] == "wgan-gp" and (step * r["train.d_steps"] + i) % k == 0:
                e = torch.rand(bs, generator=gens["penalty"])
                loss_d = loss_d + r["loss.gamma"] * k * wgan_gp_penalty(D, real, f, None, e)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        D.requires_grad_(False)
        loss_g = loss.g(D(fake(torch.randn(bs, r["model.z_dim"], generator=gens["noise"])))[0], None)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        if G_ema is not None:
            _ema_update(G_ema, G, r["model.ema"])
        step += 1
        if step % 500 == 0:
            log(f"  step {step}: loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f} "
                f"({step / (time.perf_counter() - t0):.2f} steps/s)")
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = G_ema if G_ema is not None else G
    out.eval()
    return out, {"steps": step, "seconds": round(secs, 1), "cpu_seconds": round(cpu, 1),
                 "steps_per_cpu_s": round(step / cpu, 3), "steps_per_s": round(step / secs, 3),
                 "g_params": sum(p.numel() for p in G.parameters()),
                 "d_params": sum(p.numel() for p in D.parameters())}


def gan_sampler(G: TextGenerator, decode: Callable[[torch.Tensor], list[str]], seed: int = 0,
                batch: int = 1000) -> Callable[[int, float], list[str]]:
    """sample(n, temperature) -> n lines: z ~ N(0, I), softmax(G's logits) per position, T = 0 the argmax."""

    @torch.no_grad()
    def sample(n: int, temperature: float) -> list[str]:
        gen = torch.Generator().manual_seed(seed)  # the same noise and draws for every call
        lines = []
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), G.z_dim, generator=gen)
            probs = torch.softmax(G.logits(z), dim=-1)  # (B, L, V)
            idx = decode_samples(probs, temperature or None, gen)  # (B, L)
            lines += decode(idx)
        return lines

    return sample


def sweep(sample: Callable[[int, float], list[str]], train_lines: list[str], holdout_lines: list[str],
          n: int, temperatures=TEMPERATURES) -> dict[str, dict[str, float]]:
    """text_metrics of n samples at each temperature, keyed by the temperature as text."""
    return {f"{t:g}": text_metrics(sample(n, t), train_lines, holdout_lines) for t in temperatures}


def main() -> None:
    """Train one recipe on the surnames (80/20 split) and print its metrics per temperature."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop training after this much CPU time (0 = none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value")
    ap.add_argument("--n", type=int, default=10000, help="samples per temperature")
    ap.add_argument("--name", default="")
    ap.add_argument("--log", default="", help="append a JSON line with the trial's results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    recipe = parse_set(args.set, RECIPE)
    if args.steps is not None:
        recipe["train.steps"] = args.steps
    data = prepare_text("names", surnames(), holdout=0.2, seed=0)
    print(f"{args.name or 'trial'}: {json.dumps({k: v for k, v in recipe.items() if RECIPE[k] != v})}")
    G, stats = train_gan_prototype(data.x, len(data.vocab), recipe, args.seed, args.minutes)
    print(f"  trained {stats}", flush=True)
    res = sweep(gan_sampler(G, data.vocab.decode, args.seed), data.train_lines, data.holdout_lines, args.n)
    show = ("copies", "unique", "novel_real", "jsd_mean", "len_w1", "fwd_nll", "rev_nll")
    print("  T     " + " ".join(f"{k:>10}" for k in show))
    for t, m in res.items():
        print(f"  {t:<5} " + " ".join(f"{m[k]:10.4f}" for k in show))
    any_m = next(iter(res.values()))
    print(f"  real: real_nll {any_m['real_nll']:.4f} rev_nll_real {any_m['rev_nll_real']:.4f}")
    if args.log:
        with open(args.log, "a") as f:
            f.write(json.dumps({"name": args.name, "recipe": recipe, "seed": args.seed, "stats": stats,
                                "metrics": res}) + "\n")


if __name__ == "__main__":
    main()
