"""The HTML report, generated from tiny real runs; rendered with headless Chromium when it is installed."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganforge import config, doctor, report, train
from ganforge.viz.animation import make_animation, sample_pictures

TINY_MNIST = ['data.name="mnist-5k"', "data.limit=300", "model.z_dim=8", "model.g.hidden=[16]",
              "model.d.hidden=[16]", "train.batch_size=20", "train.steps=40", "train.log_every=5",
              "train.sample_every=10", "train.ckpt_every=0", 'train.progress="none"', "train.num_samples=16"]
TINY_1D = ['data.name="gaussian-1d"', "data.n=2000", "model.z_dim=4", "model.g.hidden=[16]",
           "model.d.hidden=[16]", "train.batch_size=32", "train.steps=60", "train.log_every=10",
           "train.sample_every=30", "train.ckpt_every=0", 'train.progress="none"', "train.hist_samples=200",
           "g_optim.lr=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """A tiny MNIST run (with eval records and a GIF) and a tiny 1D run whose G never learns (lr 0)."""
    root = tmp_path_factory.mktemp("runs")
    out = []
    for name, items in (("mnist", TINY_MNIST), ("frozen-1d", TINY_1D)):
        cfg = config.apply_overrides(config.Config(), items + [f'train.out="{root / name}"'])
        out.append(train.train(cfg).out)
    with open(out[0] / "metrics.jsonl", "a") as f:  # what an evaluating trainer adds
        f.write(json.dumps({"step": 20, "eval/fid": 250.5}) + "\n")
        f.write(json.dumps({"step": 40, "eval/fid": 200.25, "eval": {"kid": 0.125}}) + "\n")
        f.write(json.dumps({"step": 40, "doctor": {"check": "config"}}) + "\n")  # ignored by the report
    make_animation(sample_pictures(out[0] / "samples"), out[0] / "samples.gif")
    (out[1] / "samples.gif").unlink(missing_ok=True)  # whether or not the trainer wrote one: a run without
    return out


def _expected_images(run: Path) -> int:
    """Curves, the pictures over time, the final picture and the animation if any."""
    pictures = sample_pictures(run / "samples")
    return 1 + len(report.pick_evenly(pictures)) + 1 + (run / "samples.gif").is_file()


def _images(text: str) -> list[str]:
    return re.findall(r"<img [^>]*>", text)


def test_single_run_report_is_self_contained(runs):
    out = report.write_report([runs[0]], runs[0] / "report.html")
    text = out.read_text()
    imgs = _images(text)
    # curves + 4 sample pictures over time (steps 10..40) + the final samples + the animation
    assert len(imgs) == 1 + 4 + 1 + 1 == _expected_images(runs[0])
    assert all('src="data:image/' in tag for tag in imgs)
    assert text.count('src="data:image/gif;base64,') == 1
    assert not re.search(r"https?://", text)
    assert "<script" not in text and "<link" not in text
    assert "<th>eval/fid</th><th>eval/kid</th>" in text
    assert "<td>200.2</td><td>0.125</td>" in text  # final values, 4 significant digits
    findings = doctor.diagnose_run(runs[0])  # (a trainer that logs sample diversity may give some here)
    assert ("No problems found." in text) == (not findings)
    assert text.count('<div class="finding') == max(1, len(findings))
    assert "name = &quot;mnist-5k&quot;" in text  # the resolved config, escaped
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", text)
    assert captions == ["step 10", "step 20", "step 30", "step 40"]


def test_several_runs_are_compared(runs):
    out = report.write_report(runs, runs[0].parent / "both.html")
    text = out.read_text()
    assert "All runs overlaid" in text
    rows = re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", text)
    assert [name for name, _ in rows] == ["mnist", "frozen-1d"]
    cells = dict(rows)
    assert cells["mnist"].startswith("<td>40</td>") and cells["frozen-1d"].startswith("<td>60</td>")
    findings = doctor.diagnose_run(runs[1])
    assert "config" in [f.check for f in findings]  # g_optim.lr = 0 is out of range
    assert cells["frozen-1d"].endswith(f"<td>{len(findings)} (warning)</td>")
    assert "g_optim.lr = 0 is outside the usual range" in text
    assert not re.search(r"https?://", text)


def test_series_eval_keys_and_picking():
    recs = [{"step": 1, "loss_d": 1.0}, {"step": 2, "eval": {"fid": 3.0}},
            {"step": 3, "eval/fid": 2.0, "x": True}]
    steps, values = report.series(recs, "eval/fid")
    np.testing.assert_array_equal(steps, [2, 3])
    np.testing.assert_array_equal(values, [3.0, 2.0])
    assert report.eval_keys(recs) == ["eval/fid"]
    assert report.final(recs, "loss_d") == 1.0 and report.final(recs, "x") is None
    assert report.pick_evenly(list(range(20))) == [0, 3, 5, 8, 11, 14, 16, 19]
    assert report.pick_evenly([1, 2]) == [1, 2]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganforge")
    report.add_report_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_cli_default_outputs_and_errors(runs, tmp_path, capsys):
    args = _parser().parse_args(["report", str(runs[1])])
    assert args.func(args) == 0
    assert capsys.readouterr().out == f"wrote report to {runs[1] / 'report.html'}\n"
    assert report.default_out(["a", "b"]) == Path("report.html")  # several runs: the current folder
    args = _parser().parse_args(["report", str(tmp_path / "nothing")])
    missing = f"no metrics.jsonl in {tmp_path / 'nothing'}: not a ganforge run folder, or training has not"
    with pytest.raises(FileNotFoundError, match="^" + re.escape(missing)):
        args.func(args)


# ---------------------------------------------------------------------------------------------------
# Rendered by a real browser

COUNT_LOADED = ("<script>addEventListener('load', () => { const all = [...document.images]; "
                "const ok = all.filter(i => i.complete && i.naturalWidth > 0).length; "
                "document.title = 'loaded ' + ok + ' of ' + all.length; });</script>")


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    return exe


def _browser(exe: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_report_renders_in_chromium(runs, tmp_path):
    exe = _chromium()
    html = report.write_report(runs, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    _browser(exe, f"--screenshot={shot}", "--window-size=1200,3000", html.as_uri())
    assert shot.is_file()
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (3000, 1200)
    assert pixels.std() > 20  # plots and pictures, not a blank page
    # every <img> decoded: a copy of the page with a script counting the loaded images in its title
    probe = tmp_path / "probe.html"
    probe.write_text(html.read_text().replace("</body>", COUNT_LOADED + "</body>"))
    dom = _browser(exe, "--dump-dom", probe.as_uri()).stdout
    n = len(_images(html.read_text()))
    assert n == 1 + _expected_images(runs[0]) + _expected_images(runs[1]) == 1 + 7 + 4  # + overlaid curves
    assert f"<title>loaded {n} of {n}</title>" in dom
