"""The one Discriminator of every architecture and mode: its (logits, aux) interface, weight names, old checkpoints."""

import json

import pytest
import torch
from safetensors.torch import save_file
from torch.testing import assert_close

from ganforge import checkpoint, config, train
from ganforge.config import ModelConfig, NetConfig
from ganforge.models import ARCHS, Discriminator, MLPTrunk, build_discriminator, build_generator
from ganforge.models.conditional import MODES

SHAPES = {"mlp": (1, 8, 8), "dcgan": (2, 16, 16)}


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize(("mode", "pack"), [(m, 1) for m in MODES] + [("none", 2)])  # packing: no labels
def test_every_d_returns_logits_and_aux_from_one_call(arch, mode, pack):
    torch.manual_seed(0)
    net = NetConfig(arch=arch, hidden=[8], channels=4, minibatch="stddev")
    D = build_discriminator(ModelConfig(d=net, conditional=mode, pack=pack), SHAPES[arch], 3)
    x = torch.randn(8 // pack, pack * SHAPES[arch][0], *SHAPES[arch][1:])  # (B/pack, pack * C, ...)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])[: len(x)]
    logits, aux = D(x, y)
    assert logits.shape == (len(x),)
    assert (aux.shape == (len(x), 3)) if mode == "acgan" else aux is None


def test_the_mlp_trunk_is_the_d_for_data_of_any_shape_with_labels_joined():
    D = Discriminator(MLPTrunk, NetConfig(hidden=[6]), (2, 3), 4, "concat")
    assert D.body[0].in_features == 6 + 4 and D.body.width == 6
    x = torch.randn(5, 2, 3)
    y = torch.tensor([0, 1, 2, 3, 0])
    h = D.body(x, torch.nn.functional.one_hot(y, 4).float())
    assert_close(D.features(x, y), h)


def test_mlp_d_with_labels_keeps_its_layers_at_body_i():
    D = build_discriminator(ModelConfig(d=NetConfig(hidden=[8]), conditional="embed"), (3,), 3)
    assert list(D.state_dict()) == ["code.embed.weight", "body.0.weight", "body.0.bias", "out.weight", "out.bias"]


def test_an_unknown_arch_names_the_setting():
    with pytest.raises(ValueError, match="model.d.arch: 'resnet' is not one of mlp, dcgan"):
        build_discriminator(ModelConfig(d=NetConfig(arch="resnet")), (3,))
    with pytest.raises(ValueError, match="model.g.arch: 'resnet' is not one of mlp, dcgan"):
        build_generator(ModelConfig(g=NetConfig(arch="resnet")), (3,), False)


@pytest.mark.parametrize("minibatch", ["none", "discrimination"])
def test_schema_2_checkpoint_of_a_labelled_mlp_d_is_migrated(tmp_path, tiny_mnist, minibatch):
    """Schema 2 kept a conditional (or minibatch) mlp D's layers at d.body.1.<i>; they load as d.body.<i>."""
    cfg = config.apply_overrides(tiny_mnist, ['model.conditional="concat"', f'model.d.minibatch="{minibatch}"',
                                              "train.steps=3", "train.ckpt_every=0", "train.sample_every=0",
                                              "train.tensorboard=false", "train.doctor=false"])
    run = train.train(cfg)
    tensors, state = checkpoint.load(run.out / train.CHECKPOINT)
    old = {("d.body.1." + k[len("d.body."):] if k.startswith("d.body.") else k): v.contiguous()
           for k, v in tensors.items()}
    assert "d.body.1.0.weight" in old and "d.body.0.weight" not in old
    save_file(old, str(run.out / train.CHECKPOINT),
              metadata={"format": checkpoint.FORMAT, "schema": "2", "state": json.dumps(state)})
    migrated, _ = checkpoint.load(run.out / train.CHECKPOINT)
    assert set(migrated) == set(tensors)
    resumed = train.resume(run.out, ["train.steps=4"])
    for k, v in resumed.D.state_dict().items():
        assert_close(v, tensors["d." + k], rtol=0, atol=0)
    train.train(run=resumed)  # the optimizer state matched the parameters too
    assert resumed.step == 4


def test_schema_2_migration_leaves_other_ds_alone():
    tensors = {"d.body.1.weight": torch.ones(1)}  # an unconditional mlp D's second layer (a norm)
    state = {"config": {"model": {"conditional": "none", "d": {"arch": "mlp", "minibatch": "none"}}}}
    checkpoint.MIGRATIONS[2](tensors, state)
    assert list(tensors) == ["d.body.1.weight"]
    state["config"]["model"] = {"conditional": "acgan", "d": {"arch": "dcgan"}}
    checkpoint.MIGRATIONS[2](tensors, state)
    assert list(tensors) == ["d.body.1.weight"]
