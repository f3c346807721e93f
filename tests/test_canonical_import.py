"""Importing canonical PyTorch CycleGAN files (pytorch-CycleGAN-and-pix2pix), and bad files.

The reference networks (``tests/builders/reference_cyclegan.py``) are written exactly as the
reference code builds them, so their ``state_dict`` keys are the canonical ones (the table in
``gan_init/transfer/canonical.py``).
"""

import io
import os

import pytest
import torch

from gan_init.networks import BackboneSpec, CycleGANGenerator, PatchGANDiscriminator
from gan_init.transfer import (
    CheckpointError,
    copy_params,
    effective_state,
    load_cyclegan_discriminator,
    load_cyclegan_generator,
)
from tests.builders.checkpoints import save_cyclegan
from tests.builders.networks import tiny_spec
from tests.builders.reference_cyclegan import NLayerDiscriminator, reference_generator


def test_canonical_keys_follow_the_table():
    ref = reference_generator(ngf=64, n_blocks=9)
    state = ref.state_dict()
    assert len(state) == 48
    assert sum(t.numel() for t in state.values()) == 11_365_633
    assert tuple(state["model.19.weight"].shape) == (256, 128, 3, 3)
    assert tuple(state["model.26.weight"].shape) == (1, 64, 7, 7)
    assert sum(p.numel() for p in CycleGANGenerator().parameters()) == 11_365_633


@pytest.mark.parametrize("n_blocks", [2, 3])
def test_imported_generator_computes_what_the_reference_computes(tmp_path, n_blocks):
    ref = reference_generator(n_blocks=n_blocks)
    path = tmp_path / "latest_net_G_B.pth"
    torch.save(ref.state_dict(), path)
    g = load_cyclegan_generator(path, direction="t2_to_t1")
    assert not g.training
    assert g.spec.base_width == 8 and g.spec.n_blocks == n_blocks and g.spec.spatial_dims == 2
    x = torch.rand(2, 1, 20, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g(x), ref(x), atol=1e-5, rtol=1e-4)


def test_imported_3d_generator_computes_what_the_reference_computes(tmp_path):
    ref = reference_generator(ngf=4, n_blocks=1, d=3)
    torch.save(ref.state_dict(), tmp_path / "g.pth")
    g = load_cyclegan_generator(tmp_path / "g.pth", spatial_dims=3)
    x = torch.rand(1, 1, 8, 12, 8) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g(x), ref(x), atol=1e-5, rtol=1e-4)


def test_import_into_equalized_lr_copies_effective_weights(tmp_path):
    ref = reference_generator(n_blocks=2)
    torch.save(ref.state_dict(), tmp_path / "g.pth")
    src = load_cyclegan_generator(tmp_path / "g.pth")
    dst = CycleGANGenerator(BackboneSpec(base_width=8, n_blocks=2, equalized_lr=True))
    copy_params(effective_state(src), dst)
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(dst(x), ref(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("n_layers", [2, 3])
def test_imported_discriminator_computes_what_the_reference_computes(tmp_path, n_layers):
    torch.manual_seed(1)
    ref = NLayerDiscriminator(ndf=8, n_layers=n_layers).eval()
    torch.save(ref.state_dict(), tmp_path / "latest_net_D_B.pth")
    d = load_cyclegan_discriminator(tmp_path / "latest_net_D_B.pth", domain="t1")
    assert d.n_layers == n_layers and not d.training
    x = torch.rand(2, 1, 40, 36) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(d(x), ref(x), atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- bad input


def test_wrong_kind_of_checkpoint_is_named(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 3}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="without gan-init metadata"):
        load_cyclegan_generator(tmp_path / "other.ckpt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="expected a CycleGAN generator"):
        load_cyclegan_generator(tmp_path / "junk.pt")
    torch.save(NLayerDiscriminator().state_dict(), tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="discriminator file, not a generator"):
        load_cyclegan_generator(tmp_path / "d.pth")
    torch.save(reference_generator().state_dict(), tmp_path / "g.pth")
    with pytest.raises(CheckpointError, match="generator file, not a discriminator"):
        load_cyclegan_discriminator(tmp_path / "g.pth")


def test_wrong_dimensionality_is_named(tmp_path):
    torch.save(reference_generator(ngf=4, n_blocks=1, d=3).state_dict(), tmp_path / "g3.pth")
    with pytest.raises(CheckpointError, match="3D network, expected 2D"):
        load_cyclegan_generator(tmp_path / "g3.pth", spatial_dims=2)
    state = reference_generator().state_dict()
    state["model.1.weight"] = state["model.1.weight"][..., 0]  # rank 3: a 1D conv
    torch.save(state, tmp_path / "g1.pth")
    with pytest.raises(CheckpointError, match=r"rank 3.*2D \(rank 4\) or 3D"):
        load_cyclegan_generator(tmp_path / "g1.pth")


def test_truncated_file_is_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save(reference_generator().state_dict(), buffer)
    (tmp_path / "cut.pth").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_cyclegan_generator(tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_cyclegan_generator(tmp_path / "missing.pth")


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize(
    "load, which, name, prefix",
    [
        (load_cyclegan_generator, ("t2_to_t1", "t1_to_t2"), "CycleGAN generator", "g"),
        (load_cyclegan_discriminator, ("t1", "t2"), "PatchGAN discriminator", "d"),
    ],
)
def test_both_loaders_treat_their_kind_alike(tmp_path, spatial_dims, load, which, name, prefix):
    """The generator and discriminator loaders share one code path: the same checks, in order."""
    path = tmp_path / "c.ckpt"
    cyclegan = save_cyclegan(path, tiny_spec(spatial_dims))
    for choice in which:
        net = load(path, choice, spatial_dims=spatial_dims)
        reference = getattr(cyclegan, f"{prefix}_{choice}").state_dict()
        assert not net.training and all(
            torch.equal(net.state_dict()[k], v) for k, v in reference.items()
        )
    with pytest.raises(ValueError, match=f"did you mean '{which[0]}'"):
        load(path, which[0] + "x")
    with pytest.raises(
        CheckpointError, match=f"{spatial_dims}D network, expected {5 - spatial_dims}D"
    ):
        load(path, which[0], spatial_dims=5 - spatial_dims)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match=f"expected a {name} \\(a gan-init CycleGAN"):
        load(tmp_path / "junk.pt")


def test_keys_that_do_not_fit_name_key_and_shapes(tmp_path):
    state = reference_generator().state_dict()
    state["model.4.weight"] = torch.zeros(16, 8, 5, 5)
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(CheckpointError) as err:
        load_cyclegan_generator(tmp_path / "g.pth")
    message = str(err.value)
    assert "encoder.down1.conv.weight" in message
    assert "expected shape (16, 8, 3, 3)" in message and "found shape (16, 8, 5, 5)" in message
    assert "\n" not in message and message.startswith(f"{tmp_path / 'g.pth'}: ")
    assert "Fix: only a resnet_<n>blocks generator of pytorch-CycleGAN-and-pix2pix" in message

    state = reference_generator().state_dict()
    del state["model.15.bias"]  # up2 sits at 13 + n_blocks
    torch.save(state, tmp_path / "g2.pth")
    with pytest.raises(CheckpointError, match=r"missing key 'decoder\.up2\.conv\.bias'"):
        load_cyclegan_generator(tmp_path / "g2.pth")


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_project_checkpoint_whose_weights_disagree_with_its_metadata_is_one_named_line(
    tmp_path, spatial_dims
):
    path = tmp_path / "c.ckpt"
    save_cyclegan(path, tiny_spec(spatial_dims))
    checkpoint = torch.load(path, weights_only=True)
    head = checkpoint["state_dict"]["g_t2_to_t1.head.conv.weight"]
    checkpoint["state_dict"]["g_t2_to_t1.head.conv.weight"] = head[:, :2]
    del checkpoint["state_dict"]["g_t2_to_t1.head.conv.bias"]
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as caught:
        load_cyclegan_generator(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: g_t2_to_t1: weights do not fit")
    assert f"key 'head.conv.weight': expected shape {tuple(head.shape)}, found shape " in message
    assert "missing key 'head.conv.bias' (expected shape (1,))" in message
    assert "Fix: the file's weights disagree with its own gan_init metadata" in message
    assert load_cyclegan_generator(path, "t1_to_t2").spec.spatial_dims == spatial_dims


def test_copy_params_checks_everything_before_copying():
    src = CycleGANGenerator(BackboneSpec(base_width=4, n_blocks=1))
    dst = CycleGANGenerator(BackboneSpec(base_width=4, n_blocks=1))
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    state = effective_state(src)
    state["head.conv.weight"] = torch.zeros(1, 4, 5, 5)
    with pytest.raises(CheckpointError, match="head.conv.weight"):
        copy_params(state, dst)
    for key, value in dst.state_dict().items():  # nothing was copied
        torch.testing.assert_close(value, before[key])
    with pytest.raises(CheckpointError, match="unexpected key 'extra'"):
        copy_params({**effective_state(src), "extra": torch.zeros(1)}, dst)
    copied = copy_params({"head.conv.bias": torch.ones(1)}, dst, require_all=False)
    assert copied == ["head.conv.bias"] and dst.head.conv.bias.item() == 1.0


class _Evil:
    """Unpickling this runs a shell command (it would create ``marker``)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_needing_arbitrary_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    state = reference_generator().state_dict()
    state["payload"] = _Evil(marker)
    torch.save(state, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused.*arbitrary code"):
        load_cyclegan_generator(tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused"):
        load_cyclegan_discriminator(tmp_path / "evil.pth")
    assert not marker.exists()


def test_discriminator_mapping_matches_patchgan_names():
    d = PatchGANDiscriminator(base_width=8, n_layers=3)
    assert {k.rsplit(".", 1)[0] for k in d.state_dict()} == {
        "stem.conv", "down1.conv", "down2.conv", "features.conv", "logits",
    }  # fmt: skip
