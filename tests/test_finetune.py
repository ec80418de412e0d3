"""train --init: weights copied from a run, a checkpoint or an exported G; fresh optimizers; clear mismatches."""

from __future__ import annotations

import pytest
import torch

import ganforge
from ganforge import config, train
from ganforge.cli import main
from ganforge.config import ConfigError
from ganforge.finetune import init_from
from ganforge.outputs import NullOutput
from ganforge.sampling import export
from tests.conftest import TINY_1D, TINY_MNIST

EMA = ["model.ema=0.9"]


def _cfg(tmp, items, name):
    return config.apply_overrides(config.Config(), items + [f'train.out="{tmp / name}"'])


def _trained(tmp, items, name, steps=5):
    run = train.build(_cfg(tmp, items + [f"train.steps={steps}"], name))
    train.train(run=run, output=NullOutput())
    train.save_run(run)
    return run


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny 1D run with EMA, trained 5 steps: G, D, G_ema all differ from a fresh build."""
    return _trained(tmp_path_factory.mktemp("src"), TINY_1D + EMA, "src")


def _equal(a: torch.nn.Module, b: dict[str, torch.Tensor]) -> bool:
    mine = a.state_dict()
    return mine.keys() == b.keys() and all(torch.equal(mine[k].cpu(), b[k].cpu()) for k in mine)


def test_init_from_a_run_folder_copies_g_d_and_g_ema(source, tmp_path):
    run = train.build(_cfg(tmp_path, TINY_1D + EMA + ["train.seed=9"], "new"))
    assert not _equal(run.G, source.G.state_dict())
    line = init_from(run, source.out)
    assert line == (f"initialised G, D and G_ema from {source.out} (step 5; G_ema from its G_ema); "
                    "optimizers and step start fresh")
    assert _equal(run.G, source.G.state_dict()) and _equal(run.D, source.D.state_dict())
    assert _equal(run.G_ema, source.G_ema.state_dict()) and not _equal(run.G_ema, source.G.state_dict())
    assert run.step == 0 and run.opt_g.state_dict()["state"] == {} and run.opt_d.state_dict()["state"] == {}
    assert run.opt_g.param_groups[0]["params"] == list(run.G.parameters())  # optimizers still own G's tensors
    before = {k: v.clone() for k, v in run.G.state_dict().items()}
    train.train(run=run, output=NullOutput())  # fine-tuning trains from there
    assert run.step == 40 and not _equal(run.G, before)


def test_g_ema_starts_from_g_when_the_source_kept_none(tmp_path):
    src = _trained(tmp_path, TINY_1D, "plain", steps=3)  # model.ema = 0: no G_ema saved
    run = train.build(_cfg(tmp_path, TINY_1D + EMA, "new"))
    line = init_from(run, src.out / "checkpoint.safetensors")
    assert line.endswith("(step 3; G_ema from its G); optimizers and step start fresh")
    assert _equal(run.G_ema, src.G.state_dict()) and _equal(run.G, src.G.state_dict())
    run = train.build(_cfg(tmp_path, TINY_1D, "no-ema"))
    assert init_from(run, src.out) == (f"initialised G and D from {src.out} (step 3); "
                                       "optimizers and step start fresh")


def test_init_from_an_exported_g_leaves_d_fresh(source, tmp_path):
    g_file = export(source.out, tmp_path / "G.safetensors")  # G_ema's weights
    run = train.build(_cfg(tmp_path, TINY_1D + EMA + ["train.seed=9"], "new"))
    fresh_d = {k: v.clone() for k, v in run.D.state_dict().items()}
    assert init_from(run, g_file) == (f"initialised G and G_ema from {g_file} (exported G_ema, step 5); "
                                      "D starts fresh")
    assert _equal(run.G, source.G_ema.state_dict()) and _equal(run.G_ema, source.G_ema.state_dict())
    assert _equal(run.D, fresh_d)


@pytest.mark.parametrize("items, message", [
    (["model.z_dim=5"], "--init: g.body.0.weight is (16, 4) in {src} but (16, 5) here: "
                        "model.z_dim or model.g must match"),
    (["model.d.hidden=[8]"], "--init: d.body.0.weight is (16, 1) in {src} but (8, 1) here: "
                             "model.d and model.pack must match"),
    (["model.latent_components=3"], "--init: g.latent.means is missing in {src}: "
                                    "model.latent_components must match"),
    (["model.g.hidden=[16, 16]"], "--init: g.body.3.weight is missing in {src}: model.z_dim or model.g must match"),
    (["model.g.hidden=[]"], "--init: g.out.weight is (1, 16) in {src} but (1, 4) here: "
                            "model.z_dim or model.g must match"),
])
def test_mismatched_shapes_name_the_first_tensor(source, tmp_path, items, message):
    run = train.build(_cfg(tmp_path, TINY_1D + EMA + items, "new"))
    with pytest.raises(ConfigError) as e:
        init_from(run, source.out)
    assert str(e.value) == message.format(src=source.out)


def test_extra_tensors_in_the_source_are_named(tmp_path):
    src = _trained(tmp_path, TINY_1D + ["model.latent_components=3"], "mix", steps=1)
    run = train.build(_cfg(tmp_path, TINY_1D, "new"))
    with pytest.raises(ConfigError) as e:
        init_from(run, src.out)
    assert str(e.value) == f"--init: g.body.0.weight is missing in {src.out}: model.z_dim or model.g must match"


def test_other_data_and_missing_sources_are_errors(source, tmp_path):
    run = train.build(_cfg(tmp_path, TINY_MNIST, "mnist"))
    with pytest.raises(ConfigError) as e:
        init_from(run, source.out)
    assert str(e.value) == (f"--init: {source.out} was trained on points data shaped (1,), but this run's data "
                            "is images shaped (1, 28, 28)")
    with pytest.raises(ConfigError) as e:
        init_from(run, tmp_path / "nowhere")
    assert str(e.value) == (f"--init: no checkpoint at {tmp_path / 'nowhere'} "
                            "(expected a run folder or a .safetensors file)")


def test_conditional_class_counts_must_match(tmp_path):
    src = _trained(tmp_path, TINY_MNIST + ['model.conditional="embed"'], "c", steps=1)
    run = train.build(_cfg(tmp_path, TINY_MNIST + ['model.conditional="embed"'], "new"))
    run.data.num_classes = 5  # e.g. a folder of 5 classes of 28x28 gray images
    with pytest.raises(ConfigError) as e:
        init_from(run, src.out)
    assert str(e.value) == (f"--init: {src.out} has 10 classes but this run's data has 5: a conditional G "
                            "needs the same classes")


def _sets(items):
    return [a for item in items if not item.startswith("train.steps=") for a in ("--set", item)]


def test_cli_init(source, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["train", *_sets(TINY_1D + EMA), "--out", str(out), "--steps", "2", "--init", str(source.out)]) == 0
    assert (f"initialised G, D and G_ema from {source.out} (step 5; G_ema from its G_ema); optimizers and step "
            "start fresh") in capsys.readouterr().err
    assert ganforge.load(out).step == 2
    assert main(["train", "--resume", str(out), "--init", str(source.out)]) == 2
    assert capsys.readouterr().err == ("ganforge train: error: --init starts a new run from trained weights, "
                                       "--resume continues one: use one\n")
    assert main(["train", *_sets(TINY_1D), "--out", str(tmp_path / "x"), "--steps", "2", "--init", str(source.out),
                 "--set", "model.z_dim=3"]) == 2
    assert capsys.readouterr().err == (f"ganforge train: error: --init: g.body.0.weight is (16, 4) in {source.out} "
                                       "but (16, 3) here: model.z_dim or model.g must match\n")
