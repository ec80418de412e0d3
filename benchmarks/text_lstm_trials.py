"""Trials of the `text` preset's LSTM G on the census surnames (benchmarks/text_notes.md, fifth session).

One trial: the `text` preset with --set overrides trained on the benchmark's 80/20 split, then text_metrics of
10,000 samples at T = 0.8, 1, 1.2. With --critic-check, a fresh conv classifier (the critic's net, BCE) is trained
to tell the run's samples from real training lines, and its logits drive rejection sampling (Azadi et al. 2019):
if it stays at chance, the critic has nothing left to teach G.

    OMP_NUM_THREADS=1 python benchmarks/text_lstm_trials.py --name T1                                   # the preset
    OMP_NUM_THREADS=1 python benchmarks/text_lstm_trials.py --name T2 --set loss.mle_weight=0            # critic alone
    OMP_NUM_THREADS=1 python benchmarks/text_lstm_trials.py --name T5 --set train.mle_steps=28000 --critic-check
    OMP_NUM_THREADS=1 python benchmarks/text_lstm_trials.py --name small --subset 6000     # a small file
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from text import sweep, train_gan

from ganforge import fsio
from ganforge.data.text import Vocab, prepare_text, surnames
from ganforge.metrics.text import text_metrics
from ganforge.models.text import TextDiscriminator

SHOW = ("copies", "unique", "novel_real", "jsd_mean", "len_w1", "fwd_nll", "rev_nll")


def critic_check(sample, train_lines: list[str], holdout_lines: list[str], vocab: Vocab, max_len: int,
                 steps: int = 3000, channels: int = 64, blocks: int = 2, seed: int = 0) -> dict:
    """Train a BCE conv classifier, real training lines vs 60,000 samples at T = 1; then rejection sampling from
    100,000 samples accepting each with exp(logit - the q-quantile of the logits), for q in 0.5, 0.8, 0.95."""
    def one_hot(lines: list[str]) -> torch.Tensor:
        return F.one_hot(vocab.encode(lines, max_len), len(vocab)).float()  # (N, L, V)

    torch.manual_seed(seed)
    D = TextDiscriminator(len(vocab), max_len, channels, blocks)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(seed)
    real, fake = one_hot(train_lines), one_hot(sample(60_000, 1.0, seed=11))
    losses = []
    for _ in range(steps):
        lr_ = D(real[torch.randint(len(real), (128,), generator=g)])[0]
        lf = D(fake[torch.randint(len(fake), (128,), generator=g)])[0]
        loss = F.softplus(-lr_).mean() + F.softplus(lf).mean()  # 2 ln 2 = 1.386 at chance
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    D.eval()
    cand = sample(100_000, 1.0, seed=5)
    with torch.no_grad():
        logit = torch.cat([D(x)[0] for x in one_hot(cand).split(5000)])
    u = torch.rand(len(cand), generator=torch.Generator().manual_seed(3))
    out = {"final_loss_mean_last_500": sum(losses[-500:]) / 500,
           "plain": text_metrics(cand[:10_000], train_lines, holdout_lines)}
    for q in (0.5, 0.8, 0.95):
        accept = u < torch.exp((logit - torch.quantile(logit, q)).clamp(max=0))
        kept = [c for c, a in zip(cand, accept.tolist(), strict=True) if a][:10_000]
        out[f"drs_q{q}"] = text_metrics(kept, train_lines, holdout_lines) | {"accepted": accept.float().mean().item()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="trial")
    ap.add_argument("--steps", type=int, default=0, help="G updates (0: the preset's)")
    ap.add_argument("--set", action="append", default=[], help="a config override, e.g. loss.mle_weight=0.3")
    ap.add_argument("--critic-check", action="store_true")
    ap.add_argument("--critic-size", default="64x2", help="the classifier's channels x residual blocks")
    ap.add_argument("--critic-steps", type=int, default=3000)
    ap.add_argument("--subset", type=int, default=0, help="a seeded random subset of this many surnames")
    ap.add_argument("--out", default="benchmarks/text_results/lstm_trials.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lines = surnames()
    if args.subset:
        random.Random(1).shuffle(lines)
        lines = lines[: args.subset]
    data = prepare_text("names", lines, holdout=0.2, seed=0)
    n = min(10_000, 5 * len(data.holdout_lines))  # samples per point
    t0 = time.perf_counter()
    gan = train_gan(data.train_lines, args.steps, 0, data.max_len, args.set)
    print(f"{args.name}: {gan.stats} ({time.perf_counter() - t0:.0f} s)", flush=True)
    record = {"name": args.name, "set": args.set, "stats": gan.stats,
              "subset": args.subset, "results": sweep(gan, data.train_lines, data.holdout_lines, n, (0.8, 1.0, 1.2))}
    for t, m in record["results"].items():
        print(f"{args.name} T={t} " + " ".join(f"{k} {m[k]:.4f}" for k in SHOW), flush=True)
    if args.critic_check:
        vocab = Vocab.build(data.train_lines)
        channels, blocks = (int(v) for v in args.critic_size.split("x"))
        record["critic_check"] = check = critic_check(gan, data.train_lines, data.holdout_lines, vocab, data.max_len,
                                                      args.critic_steps, channels, blocks)
        check["size"], check["steps"] = args.critic_size, args.critic_steps
        print(f"classifier loss (last 500 steps; chance 1.386): {check['final_loss_mean_last_500']:.4f}")
        for k in ("plain", "drs_q0.5", "drs_q0.8", "drs_q0.95"):
            print(f"{k}: " + " ".join(f"{s} {check[k][s]:.4f}" for s in SHOW), flush=True)
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    fsio.atomic_write_text(out, old + json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
