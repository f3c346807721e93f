"""Init strategies and their strict application: what each copies and freezes, that the copied
renderer computes what the source's does, canonical sources, and every mismatch's named error."""

import pytest
import torch
from torch import nn

from gan_init.networks import BackboneSpec, CycleGANGenerator
from gan_init.transfer import CheckpointError, effective_state, load_cyclegan_generator
from gan_init.transfer.checkpoints import sub_state
from gan_init.transfer.source import TransferSource, untrained_generator
from gan_init.transfer.strategies import (
    INIT_STRATEGIES,
    FreezeRule,
    PartCopy,
    TransferPlan,
    first_level_using,
    shuffled_copy,
)
from gan_init.transfer.transfer import (
    apply_plan,
    frozen_now,
    make_plan,
    set_frozen,
    transfer_summary,
)
from tests.builders.checkpoints import save_cyclegan
from tests.builders.networks import SIZE, tiny_noise_gan, tiny_spec
from tests.builders.reference_cyclegan import NLayerDiscriminator, reference_generator

RENDERER = ("generator.trunk.", "generator.decoder.", "generator.head.")
D_STEM = {2: "discriminator.blocks.b16.conv0.", 3: "discriminator.blocks.b8.conv0."}


def transfer(model, strategy, path=None, **kwargs):
    source = TransferSource(path, model.spatial_dims) if path else None
    plan = make_plan(strategy, model, source, **kwargs)
    return plan, apply_plan(plan, model)


def effective(model) -> dict:
    return {k: v.clone() for k, v in effective_state(model).items()}


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("grow", ["full", "stem"])
@pytest.mark.parametrize("eq_source,eq_noise", [(False, False), (True, True), (False, True)])
def test_shared_part_computes_what_the_source_generator_computes(
    tmp_path, spatial_dims, grow, eq_source, eq_noise
):
    cyclegan = save_cyclegan(tmp_path / "c.ckpt", tiny_spec(spatial_dims, eq_source))
    gan = tiny_noise_gan(spatial_dims, grow, tiny_spec(spatial_dims, eq_noise))
    transfer(gan, "cyclegan", tmp_path / "c.ckpt")
    src = cyclegan.g_t2_to_t1.eval()
    g = gan.generator
    h = torch.randn(2, g.spec.bottleneck_width, *(4,) * spatial_dims)
    with torch.no_grad():
        torch.testing.assert_close(g.render(h), src.render(h), atol=1e-6, rtol=1e-5)
        z = torch.randn(2, 8)
        feats = g.latent_stem(z)
        if grow == "stem":
            # The transferred renderer shapes the image from the first level on.
            g.set_progress(0, 1.0)
            torch.testing.assert_close(g(z), src.render(feats[0]), atol=1e-6, rtol=1e-5)
        g.set_progress(g.n_levels - 1, 1.0)
        torch.testing.assert_close(g(z), src.render(feats[-1]), atol=1e-6, rtol=1e-5)


EXPECTED = {
    "scratch": ((), None),
    "cyclegan": (RENDERER, "g_t2_to_t1"),
    "cyclegan_frozen": (RENDERER, "g_t2_to_t1"),
    "cyclegan_g_and_d": (RENDERER + ("D_STEM",), "g_t2_to_t1"),
    "cyclegan_untrained": (RENDERER, "untrained"),
    "cyclegan_t1_to_t2": (RENDERER, "g_t1_to_t2"),
    "cyclegan_shuffled": (RENDERER, "shuffled"),
}


def test_every_design_strategy_is_registered():
    assert set(EXPECTED) <= set(INIT_STRATEGIES.names())


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_each_strategy_copies_and_freezes_exactly_what_it_promises(
    tmp_path, spatial_dims, strategy
):
    spec = tiny_spec(spatial_dims)
    cyclegan = save_cyclegan(tmp_path / "c.ckpt", spec)
    gan = tiny_noise_gan(spatial_dims, "full", spec)
    before = effective(gan)
    plan, copied = transfer(gan, strategy, tmp_path / "c.ckpt", freeze_images=7, seed=3)
    after = effective(gan)

    prefixes, origin = EXPECTED[strategy]
    prefixes = tuple(D_STEM[spatial_dims] if p == "D_STEM" else p for p in prefixes)
    sources = {
        "g_t2_to_t1": cyclegan.g_t2_to_t1,
        "g_t1_to_t2": cyclegan.g_t1_to_t2,
        "untrained": untrained_generator(spec, seed=3),
        "shuffled": shuffled_copy(cyclegan.g_t2_to_t1, ("trunk", "decoder", "head"), seed=3),
    }
    copied_targets = {c.target for c in copied}
    for key in before:
        if key.startswith("generator_ema."):
            continue
        if key.startswith(prefixes):
            assert key in copied_targets, key
            if key.startswith("discriminator."):
                expected = effective_state(cyclegan.d_t1)[f"stem.conv.{key.rsplit('.', 1)[-1]}"]
            else:
                expected = effective_state(sources[origin])[key.removeprefix("generator.")]
            torch.testing.assert_close(after[key], expected, rtol=0, atol=1e-7, msg=key)
        else:
            assert key not in copied_targets, key
            torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)

    # Freezing: cyclegan_frozen holds the renderer, per part from the level that first uses it.
    if strategy == "cyclegan_frozen":
        g = gan.generator
        levels = {
            "generator.trunk": g.n_stem - 1,
            **{f"generator.decoder.up{j}": g.n_stem - 1 + j for j in (1, spec.n_down)},
            "generator.head": g.n_levels - 1,
        }
        assert {r.prefix: r.level for r in plan.freeze} == levels
        assert all(r.images == 7 for r in plan.freeze)
    else:
        assert plan.freeze == []


def test_untrained_control_differs_from_trained_and_is_seeded(tmp_path):
    spec = tiny_spec(2)
    cyclegan = save_cyclegan(tmp_path / "c.ckpt", spec)
    a, b, c = (tiny_noise_gan(2, "stem", spec) for _ in range(3))
    transfer(a, "cyclegan_untrained", tmp_path / "c.ckpt", seed=5)
    transfer(b, "cyclegan_untrained", tmp_path / "c.ckpt", seed=5)
    transfer(c, "cyclegan_untrained", None, seed=5)  # no source: the noise GAN's own knobs
    w = a.generator.trunk.blocks[0].conv1.weight
    torch.testing.assert_close(w, b.generator.trunk.blocks[0].conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(w, c.generator.trunk.blocks[0].conv1.weight, rtol=0, atol=0)
    assert not torch.equal(w, cyclegan.g_t2_to_t1.trunk.blocks[0].conv1.weight)
    assert abs(w.std().item() - 0.02) < 0.01  # the CycleGAN recipe: N(0, 0.02)


def assert_permutation(shuffled, trained, key):
    """``shuffled`` holds ``trained``'s values (sorted, equal; the same norm), in another order
    when they are not all equal."""
    torch.testing.assert_close(
        shuffled.flatten().sort().values, trained.flatten().sort().values, rtol=0, atol=1e-7,
        msg=key,
    )  # fmt: skip
    torch.testing.assert_close(shuffled.norm(), trained.norm(), rtol=1e-6, atol=0, msg=key)
    if trained.unique().numel() > 1:
        assert not torch.equal(shuffled, trained), key


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("eq_noise", [False, True])
def test_shuffled_control_permutes_each_trained_tensor_and_nothing_else(
    tmp_path, spatial_dims, eq_noise
):
    spec = tiny_spec(spatial_dims)
    cyclegan = save_cyclegan(tmp_path / "c.ckpt", spec)
    source = effective(cyclegan.g_t2_to_t1)
    noise_spec = tiny_spec(spatial_dims, eq_noise)
    gans = [tiny_noise_gan(spatial_dims, "full", noise_spec) for _ in range(4)]
    _, copied = transfer(gans[0], "cyclegan", tmp_path / "c.ckpt", seed=3)
    copied_shuffled = [
        transfer(gan, "cyclegan_shuffled", tmp_path / "c.ckpt", seed=seed)[1]
        for gan, seed in zip(gans[1:], (3, 3, 4), strict=True)
    ]
    targets = {c.target for c in copied}
    assert all({c.target for c in cs} == targets for cs in copied_shuffled)
    trained, shuffled, again, other = (effective(gan) for gan in gans)
    for key in trained:
        if key not in targets:  # the same init (same seed), no copy: exactly cyclegan's result
            torch.testing.assert_close(shuffled[key], trained[key], rtol=0, atol=0, msg=key)
            continue
        assert_permutation(shuffled[key], trained[key], key)
        torch.testing.assert_close(again[key], shuffled[key], rtol=0, atol=0, msg=key)  # seeded
        if trained[key].unique().numel() > 1:  # another seed, another permutation
            assert not torch.equal(other[key], shuffled[key]), key
    # The source network is read, never shuffled in place.
    after = effective_state(cyclegan.g_t2_to_t1)
    assert all(torch.equal(after[k], v) for k, v in source.items())


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shuffle_covers_batch_norm_state_and_leaves_integer_buffers_and_other_parts(
    spatial_dims,
):
    torch.manual_seed(0)
    generator = CycleGANGenerator(tiny_spec(spatial_dims, norm="batch"))
    with torch.no_grad():  # as after training: running statistics and affine terms learned
        for key, t in generator.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + (key.endswith("running_var")))
            else:
                t.fill_(7)
    shuffled = shuffled_copy(generator, ("trunk", "decoder", "head"), seed=0)
    trained, state = generator.state_dict(), shuffled.state_dict()
    assert any(k.endswith("running_var") and k.startswith("trunk.") for k in state)
    for key, t in trained.items():
        if key.startswith(("trunk.", "decoder.", "head.")) and t.is_floating_point():
            assert_permutation(state[key], t, key)
        else:  # the encoder, and num_batches_tracked
            assert torch.equal(state[key], t), key


def test_first_level_using_each_part():
    g = tiny_noise_gan(2, "full").generator  # levels 2, 4 (stem), 8, 16 (decoder)
    assert g.resolutions == [2, 4, 8, 16]
    parts = ("trunk", "decoder.up1", "decoder.up2", "head")
    assert [first_level_using(g, p) for p in parts] == [1, 2, 3, 3]
    stem = tiny_noise_gan(2, "stem").generator
    assert [first_level_using(stem, p) for p in parts] == [0, 0, 0, 0]


def test_freeze_rules_hold_until_level_reached_plus_images():
    rules = [FreezeRule("generator.trunk", 10, 1), FreezeRule("generator.head", None, 0)]
    assert frozen_now(rules, 50, {0: 0}) == ["generator.trunk", "generator.head"]
    assert frozen_now(rules, 29, {0: 0, 1: 20}) == ["generator.trunk", "generator.head"]
    assert frozen_now(rules, 30, {0: 0, 1: 20}) == ["generator.head"]
    gan = tiny_noise_gan(2, "stem")
    set_frozen(gan, rules, ["generator.trunk"])
    grads = {n: p.requires_grad for n, p in gan.named_parameters()}
    assert not any(v for n, v in grads.items() if n.startswith("generator.trunk."))
    assert all(v for n, v in grads.items() if n.startswith("generator.head."))
    assert all(v for n, v in grads.items() if n.startswith("generator.latent_stem."))
    assert not any(v for n, v in grads.items() if n.startswith("generator_ema."))


def test_summary_counts_per_part(tmp_path):
    spec = tiny_spec(2)
    save_cyclegan(tmp_path / "c.ckpt", spec)
    gan = tiny_noise_gan(2, "full", spec)
    plan, copied = transfer(gan, "cyclegan_frozen", tmp_path / "c.ckpt", freeze_images=5_000)
    parts = transfer_summary(gan, copied, [r.prefix for r in plan.freeze])
    for part in ("trunk", "decoder", "head"):
        n = sum(p.numel() for p in getattr(gan.generator, part).parameters())
        assert parts[part]["copied_parameters"] == parts[part]["frozen_parameters"] == n
        assert parts[part]["init_tensors"] == 0
    for part in ("latent_stem", "to_image", "discriminator"):
        assert parts[part]["copied_tensors"] == parts[part]["frozen_tensors"] == 0
        assert parts[part]["init_tensors"] == parts[part]["tensors"] > 0
    total = parts["total"]
    assert total["copied_tensors"] == len(copied)
    assert total["copied_parameters"] + total["init_parameters"] == total["parameters"]


# ---- canonical PyTorch CycleGAN files ----------------------------------------------------------


def canonical_spec(equalized_lr: bool = False) -> BackboneSpec:
    # What a canonical resnet_2blocks file with ngf 8 is (read off the shapes).
    return BackboneSpec(
        spatial_dims=2, base_width=8, n_down=2, n_blocks=2, equalized_lr=equalized_lr
    )


@pytest.mark.parametrize("eq_noise", [False, True])
def test_canonical_generator_source(tmp_path, eq_noise):
    ref = reference_generator(ngf=8, n_blocks=2)
    torch.save(ref.state_dict(), tmp_path / "latest_net_G_B.pth")
    gan = tiny_noise_gan(2, "stem", canonical_spec(eq_noise))
    transfer(gan, "cyclegan", tmp_path / "latest_net_G_B.pth")
    h = torch.randn(2, 32, 4, 4)
    with torch.no_grad():  # the reference's layers after the encoder: blocks, up-sampling, head
        torch.testing.assert_close(gan.generator.render(h), ref.model[10:](h), atol=1e-5, rtol=1e-4)


def test_canonical_discriminator_source_for_g_and_d(tmp_path):
    torch.save(reference_generator(ngf=8, n_blocks=2).state_dict(), tmp_path / "g.pth")
    torch.manual_seed(2)
    ref_d = NLayerDiscriminator(ndf=4, n_layers=3)
    torch.save(ref_d.state_dict(), tmp_path / "latest_net_D_B.pth")
    gan = tiny_noise_gan(2, "stem", canonical_spec())
    source = TransferSource(
        tmp_path / "g.pth", 2, discriminator_path=tmp_path / "latest_net_D_B.pth"
    )
    apply_plan(make_plan("cyclegan_g_and_d", gan, source), gan)
    conv = gan.discriminator.blocks["b16"].conv0
    torch.testing.assert_close(conv.effective_weight(), ref_d.model[0].weight, rtol=0, atol=1e-7)
    torch.testing.assert_close(conv.bias, ref_d.model[0].bias)
    # Without a discriminator file the canonical generator file is the wrong kind.
    with pytest.raises(CheckpointError, match="generator file, not a discriminator"):
        transfer(
            tiny_noise_gan(2, "stem", canonical_spec()), "cyclegan_g_and_d", tmp_path / "g.pth"
        )


# ---- every mismatch, named ---------------------------------------------------------------------


def test_knob_difference_is_refused_naming_it(tmp_path):
    save_cyclegan(tmp_path / "c.ckpt", tiny_spec(2, n_blocks=2))
    gan = tiny_noise_gan(2, "stem", tiny_spec(2))
    before = effective(gan)
    with pytest.raises(ValueError, match=r"n_blocks: 1 here, 2 there"):
        transfer(gan, "cyclegan", tmp_path / "c.ckpt")
    save_cyclegan(tmp_path / "n.ckpt", tiny_spec(2, norm="pixel", padding="zero"))
    with pytest.raises(ValueError, match=r"norm: 'instance' here, 'pixel' there.*padding"):
        transfer(gan, "cyclegan", tmp_path / "n.ckpt")
    assert all(torch.equal(before[k], v) for k, v in effective(gan).items())


def test_wrong_dimensionality_is_named(tmp_path):
    save_cyclegan(tmp_path / "c3.ckpt", tiny_spec(3))
    with pytest.raises(CheckpointError, match="3D network, expected 2D"):
        transfer(tiny_noise_gan(2, "stem"), "cyclegan", tmp_path / "c3.ckpt")


def test_wrong_kind_of_checkpoint_is_named(tmp_path):
    gan = tiny_noise_gan(2, "stem")
    torch.save(
        {"state_dict": gan.state_dict(), "gan_init": {"format": 1, "stage": "noise"}},
        tmp_path / "noise.ckpt",
    )
    with pytest.raises(CheckpointError, match="'noise' checkpoint; expected a 'cyclegan'"):
        transfer(gan, "cyclegan", tmp_path / "noise.ckpt")
    torch.save(NLayerDiscriminator(ndf=4).state_dict(), tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="discriminator file, not a generator"):
        transfer(gan, "cyclegan", tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        transfer(gan, "cyclegan", tmp_path / "missing.ckpt")


class Impostor(nn.Module):
    """A source that is not a CycleGAN generator, so only keys and shapes can catch it."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        self.trunk = CycleGANGenerator(spec).trunk


def test_missing_unexpected_key_and_shape_mismatch_are_named_and_nothing_is_copied():
    gan = tiny_noise_gan(2, "stem")
    before = effective(gan)
    good = CycleGANGenerator(gan.generator.spec)
    two_blocks = Impostor(tiny_spec(2, n_blocks=2))
    wide = Impostor(tiny_spec(2, base_width=8))
    empty = Impostor(tiny_spec(2, n_blocks=0))
    cases = [
        (two_blocks, r"unexpected key 'blocks\.1\.conv1\.weight'"),
        (wide, r"key 'blocks\.0\.conv1\.weight': expected shape \(16, 16, 3, 3\), found shape "
               r"\(32, 32, 3, 3\)"),
        (empty, r"missing key 'blocks\.0\.conv1\.weight'"),
    ]  # fmt: skip
    for source, message in cases:
        plan = TransferPlan(
            copies=[
                PartCopy(good, "g", "head", "generator.head"),  # fits, but must not be copied
                PartCopy(source, "impostor", "trunk", "generator.trunk"),
            ]
        )
        with pytest.raises(CheckpointError, match=message) as caught:
            apply_plan(plan, gan)
        text = str(caught.value)  # one line: the part, the key, the shapes and the fix
        assert "\n" not in text and "impostor.trunk -> generator.trunk: " in text
        assert "nothing was copied" in text and text.endswith("or pick another --init_strategy")
    plan = TransferPlan(copies=[PartCopy(good, "g", "head", "discriminator.no_such_block")])
    with pytest.raises(CheckpointError, match="no module 'discriminator.no_such_block'"):
        apply_plan(plan, gan)
    plan = TransferPlan(copies=[PartCopy(good, "g", "encoder.nothing", "generator.head")])
    with pytest.raises(CheckpointError, match="no tensors in the source"):
        apply_plan(plan, gan)
    assert all(torch.equal(before[k], v) for k, v in effective(gan).items())


def test_g_and_d_needs_the_patch_stem_discriminator(tmp_path):
    save_cyclegan(tmp_path / "c.ckpt", tiny_spec(2))
    gan = tiny_noise_gan(2, "stem", patch_stem=False)
    with pytest.raises(ValueError, match="patch_stem=False"):
        transfer(gan, "cyclegan_g_and_d", tmp_path / "c.ckpt")


def test_unknown_strategy_and_missing_source_are_named(tmp_path):
    gan = tiny_noise_gan(2, "stem")
    with pytest.raises(ValueError, match=r"did you mean 'cyclegan_frozen'.*known: .*scratch"):
        make_plan("cyclegan_frozn", gan, None)
    with pytest.raises(ValueError, match="no source was given"):
        make_plan("cyclegan", gan, None)


def test_source_generator_loads_for_both_directions(tmp_path):
    spec = tiny_spec(3)
    cyclegan = save_cyclegan(tmp_path / "c.ckpt", spec)
    source = TransferSource(tmp_path / "c.ckpt", 3)
    for direction in ("t2_to_t1", "t1_to_t2"):
        loaded = source.generator(direction)
        reference = getattr(cyclegan, f"g_{direction}").state_dict()
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in reference.items())
    assert source.spec == spec
    assert load_cyclegan_generator(tmp_path / "c.ckpt").spec == spec
    assert sub_state(effective_state(source.generator()), "head")
    assert SIZE[3] == 8
