"""One self-contained HTML report of one or more runs: curves, samples over time, doctor's findings, config.

Everything is inside the file (plots and pictures as base64 data URIs, inline CSS, no script), so it can be
mailed or opened offline. `ganforge report RUN [RUN ...]` writes it.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

import ganforge
from ganforge import doctor
from ganforge.viz.animation import frame_label, sample_pictures

MAX_PICTURES = 8  # sample pictures over time shown per run (evenly spaced, first and last included)
MAX_GIF_BYTES = 5_000_000  # an animation larger than this is linked by name instead of embedded
# (title, [(record key, legend label)], log scale) for each panel of a run's curves
PANELS = [
    ("losses", [("loss_d", "loss_d"), ("loss_g", "loss_g")], False),
    ("discriminator outputs", [("d_real", "D(x)"), ("d_fake", "D(G(z))")], False),
    ("gradient norms", [("grad_norm_d", "D"), ("grad_norm_g", "G")], True),
    ("sample diversity (1 = as spread as real data)", [("diversity", "diversity")], False),
]
COMPARE = [("loss_d", False), ("loss_g", False), ("d_real", False), ("d_fake", False), ("grad_norm_d", True),
           ("grad_norm_g", True), ("diversity", False)]


@dataclass
class RunData:
    """What the report shows of one run folder."""

    name: str
    path: Path
    records: list[dict]  # metric records (the doctor's own log lines dropped)
    config_text: str
    findings: list[doctor.Finding]
    pictures: list[Path]  # samples/step_XXXXXX.png in step order


def load_run(run_dir: str | Path, name: str | None = None) -> RunData:
    """Read a run folder: metrics.jsonl (required), config.toml, samples/ and the doctor's findings."""
    path = Path(run_dir)
    records = [r for r in doctor.read_metrics(path) if "doctor" not in r]
    cfg_path = path / "config.toml"
    cfg_text = cfg_path.read_text() if cfg_path.is_file() else ""
    return RunData(name or path.name, path, records, cfg_text, doctor.diagnose_run(path),
                   sample_pictures(path / "samples"))


# ---------------------------------------------------------------------------------------------------
# Reading series out of records


def series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records holding a number under `key`; 'eval/x' also reads rec['eval']['x']."""
    steps, values = [], []
    for rec in records:
        v = rec.get(key)
        if v is None and "/" in key:
            outer, inner = key.split("/", 1)
            v = rec.get(outer, {}).get(inner) if isinstance(rec.get(outer), dict) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and "step" in rec:
            steps.append(rec["step"])
            values.append(float(v))
    return np.asarray(steps), np.asarray(values)


def eval_keys(records: list[dict]) -> list[str]:
    """Eval metric names as 'eval/<name>', from keys 'eval/<name>' or an 'eval' dict, in first-seen order."""
    keys: dict[str, None] = {}
    for rec in records:
        for k, v in rec.items():
            if k.startswith("eval/"):
                keys[k] = None
            elif k == "eval" and isinstance(v, dict):
                keys |= {f"eval/{name}": None for name in v}
    return list(keys)


def final(records: list[dict], key: str) -> float | None:
    """The last logged value of `key`, or None."""
    _, values = series(records, key)
    return float(values[-1]) if len(values) else None


# ---------------------------------------------------------------------------------------------------
# Pictures as data URIs


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _plot_panels(panels: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]], bool]]) -> str:
    """Panels [(title, [(label, steps, values)], log y)] side by side, two per row, as a PNG data URI."""
    import matplotlib  # here, not at the top: `ganforge --help` registers this module's parser

    matplotlib.use("Agg")  # headless: never open a window
    import matplotlib.pyplot as plt

    ncol = min(2, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.5 * ncol, 3.2 * nrow), dpi=90, squeeze=False)
    for ax, (title, lines, logy) in zip(axes.flat, panels, strict=False):
        for label, xs, ys in lines:
            if logy:
                keep = ys > 0
                xs, ys = xs[keep], ys[keep]
            ax.plot(xs, ys, lw=1.2, label=label, marker="." if len(xs) < 30 else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if logy:
            ax.set_yscale("log")
        if len(lines) > 1:
            ax.legend(fontsize=8)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return data_uri(buf.getvalue())


def run_panels(run: RunData) -> list:
    """The panels of one run that have data: losses, D outputs, gradient norms, diversity, eval metrics."""
    panels = []
    for title, keys, logy in PANELS:
        lines = [(label, *series(run.records, key)) for key, label in keys]
        lines = [line for line in lines if len(line[1])]
        if lines:
            panels.append((title, lines, logy))
    for key in eval_keys(run.records):
        panels.append((key, [(key, *series(run.records, key))], False))
    return panels


def compare_panels(runs: list[RunData]) -> list:
    """One panel per quantity with a line per run."""
    panels = []
    for key, logy in COMPARE + [(k, False) for k in _union(eval_keys(r.records) for r in runs)]:
        lines = [(r.name, *series(r.records, key)) for r in runs]
        lines = [line for line in lines if len(line[1])]
        if lines:
            panels.append((key, lines, logy))
    return panels


def _union(lists) -> list[str]:
    return list(dict.fromkeys(k for keys in lists for k in keys))


def pick_evenly(items: list, k: int = MAX_PICTURES) -> list:
    """Up to k items spread evenly over the list, always the first and the last."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in sorted(set(np.linspace(0, len(items) - 1, k).round().astype(int).tolist()))]


# ---------------------------------------------------------------------------------------------------
# HTML

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px auto; max-width: 1150px;
       color: #222; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 16px; margin-top: 20px; } .meta { color: #666; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; } th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
img.plot { max-width: 100%; } .pics { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; text-align: center; font-size: 12px; color: #555; }
img.pic { border: 1px solid #ddd; max-width: 100%; } img.pixel { image-rendering: pixelated; }
.finding { border-left: 5px solid #e0a000; background: #fff8e6; padding: 6px 12px; margin: 8px 0; }
.finding.error { border-color: #c62828; background: #fdecea; }
.finding.ok { border-color: #2e7d32; background: #edf7ed; }
.finding ul { margin: 4px 0; } pre { background: #f6f6f6; padding: 10px; font-size: 12px; overflow-x: auto; }
"""


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def _img(uri: str, alt: str, cls: str = "", width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img class="{cls}" src="{uri}" alt="{html.escape(alt)}"{size}>'


def _picture(path: Path, width: int) -> str:
    """A picture file shown `width` px wide; small ones (image grids) enlarged with sharp pixels."""
    with Image.open(path) as img:
        natural, mime = img.width, Image.MIME.get(img.format, "image/png")
    return _img(data_uri(path.read_bytes(), mime), path.name,
                "pic pixel" if natural < width else "pic", width)


def _findings_html(findings: list[doctor.Finding]) -> str:
    if not findings:
        return '<div class="finding ok">No problems found.</div>'
    out = []
    for f in findings:
        at = f" (from step {f.step})" if f.step is not None else ""
        tips = "".join(f"<li>{html.escape(a)}</li>" for a in f.advice)
        out.append(f'<div class="finding {html.escape(f.severity)}"><b>{html.escape(f.severity.upper())}: '
                   f"{html.escape(doctor.TITLES.get(f.check, f.check))}{at}</b><br>{html.escape(f.message)}"
                   f"<br>Things to try:<ul>{tips}</ul></div>")
    return "\n".join(out)


def _table(runs: list[RunData]) -> str:
    """The comparison table: steps, final losses and D outputs, final eval metrics, findings."""
    evals = _union(eval_keys(r.records) for r in runs)
    cols = ["steps", "loss_d", "loss_g", "d_real", "d_fake"] + evals
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["run", *cols, "findings"])
    rows = []
    for r in runs:
        cells = [str(r.records[-1].get("step", "–")) if r.records else "–"]
        cells += [_fmt(final(r.records, c)) for c in cols[1:]]
        worst = "error" if any(f.severity == "error" for f in r.findings) else "warning"
        found = f"{len(r.findings)} ({worst})" if r.findings else "0"
        rows.append(f"<tr><td>{html.escape(r.name)}</td>" + "".join(f"<td>{c}</td>" for c in cells)
                    + f"<td>{found}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _pictures_html(run: RunData) -> str:
    if not run.pictures:
        return "<p>No sample pictures were written.</p>"
    figs = "".join(f"<figure>{_picture(p, 160)}<figcaption>{html.escape(frame_label(p))}"
                   "</figcaption></figure>" for p in pick_evenly(run.pictures))
    last = run.pictures[-1]
    out = (f"<h3>Samples over training</h3><div class='pics'>{figs}</div>"
           f"<h3>Final samples ({html.escape(frame_label(last))})</h3>{_picture(last, 520)}")
    text = last.with_suffix(".txt")  # text runs write their pictured lines beside the picture
    if text.is_file():
        out += (f"<h3>Final samples as text ({html.escape(frame_label(last))})</h3>"
                f"<pre class='lines'>{html.escape(text.read_text(encoding='utf-8', errors='replace'))}</pre>")
    gif = run.path / "samples.gif"
    if gif.is_file() and gif.stat().st_size <= MAX_GIF_BYTES:
        out += f"<h3>Samples over training, animated</h3>{_picture(gif, 520)}"
    return out


def _run_html(run: RunData, open_config: bool) -> str:
    panels = run_panels(run)
    curves = (_img(_plot_panels(panels), f"curves of {run.name}", "plot") if panels
              else "<p>No metrics logged yet.</p>")
    return (f"<section><h2>{html.escape(run.name)}</h2><p class='meta'>{html.escape(str(run.path))}</p>"
            f"<h3>Doctor</h3>{_findings_html(run.findings)}<h3>Curves</h3>{curves}{_pictures_html(run)}"
            f"<details{' open' if open_config else ''}><summary>Resolved config (config.toml)</summary>"
            f"<pre>{html.escape(run.config_text or '(no config.toml)')}</pre></details></section>")


def render(runs: list[RunData]) -> str:
    """The whole report as one HTML string."""
    parts = [f"<h1>ganforge report</h1><p class='meta'>{len(runs)} run(s), written "
             f"{datetime.now():%Y-%m-%d %H:%M} by ganforge {ganforge.__version__}</p>",
             "<h2>Summary</h2>", _table(runs)]
    if len(runs) > 1:
        panels = compare_panels(runs)
        if panels:
            overlaid = _img(_plot_panels(panels), "curves of all runs", "plot")
            parts.append(f"<h3>All runs overlaid</h3>{overlaid}")
    parts += [_run_html(r, open_config=len(runs) == 1) for r in runs]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>ganforge report</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def write_report(run_dirs: list[str | Path], out_html: str | Path) -> Path:
    """Write the report of these run folders to `out_html`; returns its path."""
    if not run_dirs:
        raise ValueError("write_report: run_dirs is empty")
    paths = [Path(d) for d in run_dirs]
    names = [p.name for p in paths]
    runs = [load_run(p, p.name if names.count(p.name) == 1 else str(p)) for p in paths]
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(runs), encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------------------------
# Command line: ganforge report RUN [RUN ...] [--out report.html]


def default_out(run_dirs: list[str]) -> Path:
    """RUN/report.html for one run, ./report.html for several."""
    return Path(run_dirs[0]) / "report.html" if len(run_dirs) == 1 else Path("report.html")


def cmd_report(args) -> int:
    out = write_report(args.runs, args.out or default_out(args.runs))
    print(f"wrote report to {out}")
    return 0


def add_report_parser(subparsers) -> None:
    """Register `ganforge report RUN [RUN ...] [--out FILE]` on the CLI's subparsers."""
    p = subparsers.add_parser("report", help="write one self-contained HTML report of one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s); several are compared")
    p.add_argument("--out", help="HTML file (default: RUN/report.html for one run, ./report.html for "
                   "several)")
    p.set_defaults(func=cmd_report)
