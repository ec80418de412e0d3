"""Text benchmark on the census surnames (80/20 split): the GAN vs a character 5-gram LM vs a char LSTM LM.

One run: the GAN (ganforge's `text` preset, trained by ganforge.train: an LSTM G that learns the lines by maximum
likelihood first, then against a conv D), with --conv also the `text-cnn` preset (Gulrajani et al. 2017's conv GAN
from scratch), a character 5-gram LM sampler (interpolated Kneser-Ney, metrics.text.NGramLM) and a character LSTM
trained by maximum likelihood alone with about G's parameter count and the GAN's CPU time. For each, a temperature
sweep of forward NLL (quality: samples under the 5-gram LM of the training lines) against reverse NLL (coverage:
held-out lines under a 5-gram LM of the samples), copies, novelty, real held-out lines generated and JS divergence,
measured by metrics.text.text_metrics on as many samples as held-out lines (at most 10,000). Prints a table and the
acceptance ratios, writes results.json and curves.png to --out.

    OMP_NUM_THREADS=1 python benchmarks/text.py --conv --out runs/text-bench     # the full run (~35 min, one core)
    OMP_NUM_THREADS=1 python benchmarks/text.py --quick --out /tmp/text-quick     # a smoke test, < 1 minute
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganforge import fsio  # noqa: E402
from ganforge.data.text import Vocab, prepare_text, surnames  # noqa: E402
from ganforge.metrics.text import NGramLM, ngram_sample, text_metrics  # noqa: E402
from ganforge.models.text import CharLSTM, sequence_nll  # noqa: E402

# The GAN is ganforge's `text` preset (src/ganforge/presets/text.toml), trained by ganforge's own loop; the
# recipe was found with the standalone prototype in text_recipe.py (benchmarks/text_notes.md).
TEXT_PRESET = "text"
CONV_PRESET = "text-cnn"
TEMPERATURES = (0.5, 0.7, 0.8, 0.9, 1.0, 1.2)
NGRAM_HOT = (1.3, 1.4, 1.6)  # the 5-gram copies less only when hot: its curve then reaches the GAN's copy rate
SHOW = ("copies", "novel", "unique", "novel_real", "jsd_mean", "len_w1", "fwd_nll", "rev_nll")
Sampler = Callable[[int, float], list[str]]


def _encode(train_lines: list[str]) -> tuple[Vocab, torch.Tensor]:
    """The vocabulary of the (already normalised) lines and their end-padded token rows (N, longest)."""
    vocab = Vocab.build(train_lines)
    return vocab, vocab.encode(train_lines, max(len(line) for line in train_lines))


def train_gan(train_lines: list[str], steps: int, seed: int, max_len: int, overrides: list[str] = (),
              preset: str = TEXT_PRESET) -> Sampler:
    """ganforge's `preset` trained on `train_lines` (all of them: the holdout is the benchmark's) for `steps` G
    updates (0: the preset's) by `ganforge.train`; returns sample(n, temperature) (T = 0: the most likely token)
    with `.stats`."""
    import tempfile

    import ganforge
    from ganforge import config

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config.load_preset(preset)
        cfg = config.apply_overrides(cfg, [
            "data.holdout=0", f"data.max_len={max_len}", f"train.steps={steps or cfg.train.steps}",
            f"train.seed={seed}",
            f'train.out="{tmp}/run"', 'train.progress="lines"', "train.tensorboard=false", "train.animation=false",
            *overrides])
        t0, c0 = time.perf_counter(), time.process_time()
        run = ganforge.train(cfg, data=train_lines)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        s = ganforge.load(run.out)

    def sample(n: int, temperature: float, seed: int = seed) -> list[str]:
        return s.sample(n, seed=seed, temperature=temperature)

    sample.default_t = 1.0 if cfg.model.g.arch == "textrnn" else 0.0  # ganforge sample's default temperature
    sample.stats = {"steps": run.step, "mle_steps": min(run.mle_steps, run.step), "seconds": seconds,
                    "cpu_seconds": cpu, "steps_per_s": run.step / seconds,
                    "g_params": sum(p.numel() for p in run.G.parameters()),
                    "d_params": sum(p.numel() for p in run.D.parameters())}
    return sample


def lstm_dim_for(params: int, vocab_size: int) -> int:
    """The CharLSTM width whose parameter count (embedding, one LSTM layer, head) is closest to `params`."""
    def count(d: int) -> int:
        return vocab_size * d + 4 * (2 * d * d + 2 * d) + d * vocab_size + vocab_size

    return min(range(8, 2049), key=lambda d: abs(count(d) - params))


def train_lstm(train_lines: list[str], params: int, seconds: float, seed: int, batch_size: int = 128,
               lr: float = 2e-3, val_frac: float = 0.05) -> Sampler:
    """A CharLSTM of about `params` weights trained by MLE for `seconds` of CPU time (Adam, lr decayed linearly).

    5% of the training lines are kept aside to choose the best weights (checked every ~5% of the time);
    the held-out split is never seen. Returns sample(n, temperature) with `.stats`.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # initialisation only
    vocab, x = _encode(train_lines)
    perm = torch.randperm(len(x), generator=gen)
    n_val = max(1, int(val_frac * len(x)))
    x_val, x_fit = x[perm[:n_val]], x[perm[n_val:]]  # (Nv, L), (Nf, L)
    model = CharLSTM(len(vocab), lstm_dim_for(params, len(vocab)), 1, x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state = float("inf"), None
    t0, c0 = time.perf_counter(), time.process_time()
    step, next_check, order, at = 0, 0.0, torch.empty(0, dtype=torch.long), 0
    while (elapsed := time.process_time() - c0) < seconds:
        for group in opt.param_groups:
            group["lr"] = lr * max(1.0 - elapsed / seconds, 0.0)
        if at + batch_size > len(order):
            order, at = torch.randperm(len(x_fit), generator=gen), 0
        batch = x_fit[order[at : at + batch_size]]  # (B, L)
        at += batch_size
        loss = sequence_nll(model(batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if elapsed >= next_check:
            next_check += 0.05 * seconds
            with torch.no_grad():
                val = sequence_nll(model(x_val), x_val).item()
            if val < best:
                best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        val = sequence_nll(model(x_val), x_val).item()
    if val > best:
        model.load_state_dict(best_state)
    model.eval()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0

    def sample(n: int, temperature: float) -> list[str]:
        return vocab.decode(model.sample(n, temperature, torch.Generator().manual_seed(seed)))

    sample.stats = {"steps": step, "seconds": round(secs, 1), "cpu_seconds": round(cpu, 1),
                    "steps_per_cpu_s": round(step / cpu, 2), "steps_per_s": round(step / secs, 2),
                    "params": sum(p.numel() for p in model.parameters()), "dim": model.lstm.hidden_size,
                    "val_nll": round(min(val, best), 4)}
    return sample


def ngram_sampler(train_lines: list[str], seed: int, order: int = 5) -> Sampler:
    """Samples of the character n-gram LM (interpolated Kneser-Ney) of the training lines."""
    lm = NGramLM(order).fit(train_lines)
    max_len = max(len(line) for line in train_lines)

    def sample(n: int, temperature: float) -> list[str]:
        return ngram_sample(lm, n, temperature, torch.Generator().manual_seed(seed), max_len)

    return sample


def sweep(sample: Sampler, train_lines: list[str], holdout_lines: list[str], n: int,
          temperatures: tuple[float, ...]) -> dict[str, dict[str, float]]:
    """text_metrics of n samples at each temperature, keyed by the temperature as text ('0' = argmax)."""
    return {f"{t:g}": text_metrics(sample(n, t), train_lines, holdout_lines) for t in temperatures}


def rev_gap(curve: dict[str, dict], ref: dict[str, dict]) -> float:
    """Smallest (over `curve`'s points) rev_nll minus the reference curve's rev_nll at the same fwd_nll.

    The reference is interpolated linearly along fwd_nll (clamped at its ends); <= 0 means the curve
    reaches the reference somewhere.
    """
    pts = sorted((m["fwd_nll"], m["rev_nll"]) for m in ref.values())
    fx, ry = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    return float(min(m["rev_nll"] - np.interp(m["fwd_nll"], fx, ry) for m in curve.values()))


def at_copies(curve: dict[str, dict], copies: float, key: str = "novel_real") -> float:
    """`key` of a curve interpolated at a given copy rate (its points ordered by copies); NaN outside its range."""
    pts = sorted((m["copies"], m[key]) for m in curve.values())
    if not pts[0][0] <= copies <= pts[-1][0]:
        return float("nan")
    return float(np.interp(copies, [p[0] for p in pts], [p[1] for p in pts]))


def summarize(results: dict[str, dict[str, dict]], default_t: float) -> dict:
    """The acceptance figures: the GAN at its default temperature against the 5-gram at T=1 and the LSTM curve.

    novel_real / copies is the share of real held-out lines per training line copied: a model that had
    learned the population of names without favouring its training lines would score holdout/train = 0.25.
    `*_novel_filtered` is novel_real once verbatim training lines are dropped (`ganforge sample --novel`):
    novel_real / (1 - copies).
    """
    g_def, ng1 = results["GAN"][f"{default_t:g}"], results["5-gram"]["1"]
    summary = {
        "gan_default_temperature": default_t,
        "gan_copies": g_def["copies"],
        "gan_novel_real": g_def["novel_real"],
        "ngram_copies_t1": ng1["copies"],
        "ngram_novel_real_t1": ng1["novel_real"],
        "novel_real_ratio_gan_over_ngram": g_def["novel_real"] / max(ng1["novel_real"], 1e-12),
        "gan_novel_real_per_copy": g_def["novel_real"] / max(g_def["copies"], 1e-12),
        "ngram_novel_real_per_copy_t1": ng1["novel_real"] / max(ng1["copies"], 1e-12),
        "gan_novel_filtered": g_def["novel_real"] / (1 - g_def["copies"]),
        "ngram_novel_filtered_t1": ng1["novel_real"] / (1 - ng1["copies"]),
        "ngram_novel_real_at_gan_copies": at_copies(results["5-gram"], g_def["copies"]),
        "lstm_novel_real_at_gan_copies": at_copies(results["LSTM"], g_def["copies"]),
        "gan_rev_gap_to_lstm": rev_gap(results["GAN"], results["LSTM"]),
        "ngram_rev_gap_to_lstm": rev_gap(results["5-gram"], results["LSTM"]),
        "goal_copies_le_15pct": g_def["copies"] <= 0.15,
        "goal_novel_real_gt_ngram": g_def["novel_real"] > ng1["novel_real"],
    }
    if "GAN (conv)" in results:
        summary["conv_gan_rev_gap_to_lstm"] = rev_gap(results["GAN (conv)"], results["LSTM"])
    summary["goal_reaches_lstm_curve"] = summary["gan_rev_gap_to_lstm"] <= 0.0
    return summary


def save_curves(results: dict[str, dict[str, dict]], real: tuple[float, float], path: Path, title: str) -> Path:
    """Forward NLL (x) vs reverse NLL (y), one line per model, points labelled by temperature, plus real data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for (name, curve), colour in zip(results.items(), ("tab:red", "tab:blue", "tab:green", "tab:purple"),
                                     strict=False):
        pts = [(t, m["fwd_nll"], m["rev_nll"]) for t, m in curve.items()]
        ax.plot([p[1] for p in pts], [p[2] for p in pts], "o-", color=colour, label=name, ms=4)
        for t, fx, ry in pts:
            ax.annotate("argmax" if t == "0" else f"T={t}", (fx, ry), fontsize=7, color=colour,
                        xytext=(3, 3), textcoords="offset points")
    ax.plot(*real, "k*", ms=12, label="real held-out lines")
    ax.set_xlabel("forward NLL of samples, training 5-gram LM (nats/char; lower: quality)")
    ax.set_ylabel("reverse NLL of held-out lines (nats/char; lower: coverage)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with fsio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def main() -> None:
    """Train the models on one split, sweep temperatures, print the table, write JSON and PNG."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=0, help="GAN G updates (0: the text preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/text-bench")
    ap.add_argument("--conv", action="store_true", help="also the text-cnn preset: the conv GAN from scratch")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in under a minute")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    lines = surnames()
    from ganforge import config

    preset = config.load_preset(TEXT_PRESET)
    overrides: dict[str, list[str]] = {TEXT_PRESET: [], CONV_PRESET: []}
    if args.quick:  # 2,000 names, a small G and D, a few steps
        lines = lines[:2000]
        args.steps = min(args.steps or 30, 30)
        small = ["model.g.channels=16", "model.d.channels=16", "model.g.blocks=1", "model.d.blocks=1",
                 "train.d_steps=1"]
        overrides = {TEXT_PRESET: [*small, "train.mle_steps=20"], CONV_PRESET: small}
    data = prepare_text("names", lines, holdout=0.2, seed=0)
    n = min(len(data.holdout_lines), 10_000)
    print(f"names: {data.report}; {n} samples per temperature", flush=True)

    t0 = time.perf_counter()
    gan = train_gan(data.train_lines, args.steps, args.seed, data.max_len, overrides[TEXT_PRESET])
    print(f"GAN: {gan.stats} ({time.perf_counter() - t0:.0f} s)", flush=True)
    samplers = {"GAN": gan}
    if args.conv:
        t0 = time.perf_counter()
        conv = train_gan(data.train_lines, args.steps, args.seed, data.max_len, overrides[CONV_PRESET], CONV_PRESET)
        print(f"GAN (conv): {conv.stats} ({time.perf_counter() - t0:.0f} s)", flush=True)
        samplers["GAN (conv)"] = conv
    lstm = train_lstm(data.train_lines, gan.stats["g_params"], gan.stats["cpu_seconds"], args.seed)
    print(f"LSTM: {lstm.stats}", flush=True)
    samplers |= {"5-gram": ngram_sampler(data.train_lines, args.seed), "LSTM": lstm}
    default_t = gan.default_t
    temps = {name: tuple(sorted({*TEMPERATURES, *([s.default_t] if hasattr(s, "default_t") else [])}))
             for name, s in samplers.items()}
    temps["5-gram"] += NGRAM_HOT
    results = {name: sweep(s, data.train_lines, data.holdout_lines, n, temps[name]) for name, s in samplers.items()}

    real = next(iter(results["GAN"].values()))
    print(f"\nreal held-out lines: fwd (real_nll) {real['real_nll']:.4f}, "
          f"rev (rev_nll_real) {real['rev_nll_real']:.4f}")
    print(f"{'model':<10} {'T':>5} " + " ".join(f"{k:>10}" for k in SHOW))
    for name, curve in results.items():
        for t, m in curve.items():
            print(f"{name:<10} {t:>5} " + " ".join(f"{m[k]:10.4f}" for k in SHOW))
    summary = summarize(results, default_t)
    print("\n" + "\n".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in summary.items()))

    stats = {name: s.stats for name, s in samplers.items() if hasattr(s, "stats")}
    record = {"args": vars(args), "preset": config.to_dict(preset), "overrides": overrides, "data": data.report,
              "n_samples": n, "stats": stats, "results": results, "summary": summary}
    fsio.atomic_write_text(out / "results.json", json.dumps(record, indent=1))
    title = (f"census surnames, 80/20: GAN {gan.stats['steps']:,} steps ({gan.stats['mle_steps']:,} by maximum "
             f"likelihood), {gan.stats['cpu_seconds']:.0f} CPU s;\nLSTM the same CPU time")
    save_curves(results, (real["real_nll"], real["rev_nll_real"]), out / "curves.png", title)
    print(f"wrote {out / 'results.json'} and {out / 'curves.png'}")


if __name__ == "__main__":
    main()
