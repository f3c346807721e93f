"""Checkpoints of the canonical PyTorch CycleGAN (pytorch-CycleGAN-and-pix2pix).

That code saves each network as a bare ``state_dict`` of an unnamed ``nn.Sequential`` called
``model`` (``latest_net_G_B.pth``: with A = T1 and B = T2, ``G_B`` maps T2 -> T1, ``D_B`` judges
T1). Its keys are positions; here they are mapped to this project's names by meaning
(the checkpoint format of that code, read off it run with its defaults):

=====================================  ======================================
canonical ``resnet_{n}blocks``          ours (``CycleGANGenerator``)
=====================================  ======================================
``model.1``                             ``encoder.stem.conv``
``model.4``, ``model.7``                ``encoder.down1.conv``, ``encoder.down2.conv``
``model.{10+i}.conv_block.1`` / ``.5``  ``trunk.blocks.{i}.conv1`` / ``.conv2``
``model.{10+n}``, ``model.{13+n}``      ``decoder.up1.conv``, ``decoder.up2.conv``
``model.{17+n}``                        ``head.conv``
=====================================  ======================================

and for the ``basic`` PatchGAN with ``n_layers`` = L: ``model.0`` -> ``stem.conv``,
``model.{3i-1}`` -> ``down{i}.conv`` (i < L), ``model.{3L-1}`` -> ``features.conv``,
``model.{3L+2}`` -> ``logits``. Width, block count, layer count, channels and spatial
dims (the rank of the weights: a 3D variant works too) are read off the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from gan_init.networks.backbones import BackboneSpec
from gan_init.networks.cyclegan import CycleGANGenerator, PatchGANDiscriminator
from gan_init.transfer.checkpoints import CheckpointError, copy_params

# Widths, counts and channels are read off a canonical file; every other layer is the reference's.
CANONICAL_FIX = (
    "only {kind} of pytorch-CycleGAN-and-pix2pix with its default layers can be read: save "
    "it from that code unchanged, or train the CycleGAN here (gan-init fit --config "
    "experiments/configs/cyclegan_2d.yaml or cyclegan_3d.yaml)"
)
_BLOCK = re.compile(r"^model\.(\d+)\.conv_block\.(\d+)\.(weight|bias)$")
_LAYER = re.compile(r"^model\.(\d+)\.(weight|bias)$")
# Old PyTorch versions saved running stats of InstanceNorm; the reference code drops them too.
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


def clean_canonical_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop a DataParallel ``module.`` prefix and stale InstanceNorm statistics."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.rsplit(".", 1)[-1] in _NORM_STATS:
            continue
        out[key] = value
    return out


def is_canonical_generator(state: Mapping[str, object]) -> bool:
    return "model.1.weight" in state and any(_BLOCK.match(k) for k in state)


def is_canonical_discriminator(state: Mapping[str, object]) -> bool:
    return "model.0.weight" in state and not any(_BLOCK.match(k) for k in state)


def _spatial_dims(weight: Tensor, key: str, source: str) -> int:
    spatial_dims = weight.dim() - 2
    if spatial_dims not in (2, 3):
        raise CheckpointError(
            f"{source}: {key} has shape {tuple(weight.shape)} (rank {weight.dim()}); expected a "
            "2D (rank 4) or 3D (rank 5) convolution weight"
        )
    return spatial_dims


def canonical_generator_key_map(n_blocks: int, second_conv: int = 5) -> dict[str, str]:
    """Canonical module prefix -> our module prefix for ``resnet_{n_blocks}blocks``.

    ``second_conv`` is 5, or 6 in the ``--use_dropout`` variant (Dropout at index 3 of each block;
    it has no weights and is the identity in eval mode).
    """
    n = n_blocks
    table = {"model.1": "encoder.stem.conv", "model.4": "encoder.down1.conv"}
    table["model.7"] = "encoder.down2.conv"
    for i in range(n):
        table[f"model.{10 + i}.conv_block.1"] = f"trunk.blocks.{i}.conv1"
        table[f"model.{10 + i}.conv_block.{second_conv}"] = f"trunk.blocks.{i}.conv2"
    table[f"model.{10 + n}"] = "decoder.up1.conv"
    table[f"model.{13 + n}"] = "decoder.up2.conv"
    table[f"model.{17 + n}"] = "head.conv"
    return table


def canonical_discriminator_key_map(n_layers: int) -> dict[str, str]:
    """Canonical module prefix -> our module prefix for the ``basic``/``n_layers`` PatchGAN."""
    table = {"model.0": "stem.conv"}
    for i in range(1, n_layers):
        table[f"model.{3 * i - 1}"] = f"down{i}.conv"
    table[f"model.{3 * n_layers - 1}"] = "features.conv"
    table[f"model.{3 * n_layers + 2}"] = "logits"
    return table


def _rename(state: Mapping[str, Tensor], table: dict[str, str], source: str) -> dict[str, Tensor]:
    """Rename ``<canonical prefix>.<weight|bias>`` to ours; a key the table lacks is an error."""
    out = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in table:
            raise CheckpointError(
                f"{source}: key {key!r} (shape {tuple(value.shape)}) has no place in the "
                f"canonical layout read off this file (known: {sorted(table)})"
            )
        out[f"{table[prefix]}.{leaf}"] = value
    return out


def generator_from_canonical(
    state: Mapping[str, Tensor], source: str = "canonical generator"
) -> CycleGANGenerator:
    """Build a ``CycleGANGenerator`` matching a canonical ``resnet_*blocks`` state_dict and copy
    its weights in (strict). Returns it in eval mode."""
    state = clean_canonical_state(state)
    if not is_canonical_generator(state):
        raise CheckpointError(
            f"{source}: not a canonical CycleGAN resnet generator (expected keys 'model.1.weight' "
            f"and 'model.<i>.conv_block.1.weight'; found {sorted(state)[:6]}...)"
        )
    stem = state["model.1.weight"]
    spatial_dims = _spatial_dims(stem, "model.1.weight", source)
    blocks = sorted({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
    n_blocks = len(blocks)
    if blocks != list(range(10, 10 + n_blocks)):
        raise CheckpointError(
            f"{source}: residual blocks at model indices {blocks}; the canonical layout has them "
            f"at 10..{9 + n_blocks}"
        )
    second = 6 if "model.10.conv_block.6.weight" in state else 5
    head_key = f"model.{17 + n_blocks}.weight"
    if head_key not in state:
        raise CheckpointError(
            f"{source}: missing key {head_key!r}: with {n_blocks} residual blocks the last "
            f"convolution is model.{17 + n_blocks}"
        )
    spec = BackboneSpec(
        spatial_dims=spatial_dims,
        in_channels=int(stem.shape[1]),
        out_channels=int(state[head_key].shape[0]),
        base_width=int(stem.shape[0]),
        n_down=2,  # fixed in the reference resnet generator
        n_blocks=n_blocks,
        norm="instance",
        padding="reflect",
        upsample="transpose",
    )
    generator = CycleGANGenerator(spec)
    ours = _rename(state, canonical_generator_key_map(n_blocks, second), source)
    copy_params(
        ours,
        generator,
        source=source,
        fix=CANONICAL_FIX.format(kind="a resnet_<n>blocks generator"),
    )
    return generator.eval()


def discriminator_from_canonical(
    state: Mapping[str, Tensor], source: str = "canonical discriminator"
) -> PatchGANDiscriminator:
    """Build a ``PatchGANDiscriminator`` matching a canonical ``basic``/``n_layers`` state_dict
    and copy its weights in (strict). Returns it in eval mode."""
    state = clean_canonical_state(state)
    if not is_canonical_discriminator(state):
        raise CheckpointError(
            f"{source}: not a canonical PatchGAN discriminator (expected 'model.0.weight'; found "
            f"{sorted(state)[:6]}...)"
        )
    indices = sorted({int(m.group(1)) for k in state if (m := _LAYER.match(k))})
    n_layers = len(indices) - 2
    if n_layers < 1:
        raise CheckpointError(f"{source}: {len(indices)} convolutions; a PatchGAN has at least 3")
    stem = state["model.0.weight"]
    spatial_dims = _spatial_dims(stem, "model.0.weight", source)
    disc = PatchGANDiscriminator(
        spatial_dims=spatial_dims,
        in_channels=int(stem.shape[1]),
        base_width=int(stem.shape[0]),
        n_layers=n_layers,
        norm="instance",
    )
    ours = _rename(state, canonical_discriminator_key_map(n_layers), source)
    copy_params(
        ours, disc, source=source, fix=CANONICAL_FIX.format(kind="a basic PatchGAN discriminator")
    )
    return disc.eval()
