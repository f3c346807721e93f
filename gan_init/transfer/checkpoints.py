"""Safe checkpoint reading and strict, name-based weight copying.

Every file is read with ``torch.load(weights_only=True)``: a file that needs arbitrary code to
unpickle is refused, never executed. Weights move by name with :func:`copy_strict`
(:func:`copy_params` for one module), which checks every key and shape before it copies anything
(as EDM's ``copy_params_and_buffers`` and nanoGPT's ``from_pretrained`` do), and copies
*effective* convolution weights through ``Conv.set_effective_weight`` so the copy is right
whatever each side's parameterization.

This project's CycleGAN checkpoints carry ``checkpoint["gan_init"]`` (see
``gan_init.models.cyclegan.CycleGAN.on_save_checkpoint``)::

    {"format": 1, "stage": "cyclegan", "spatial_dims": 2,
     "networks": {"g_t2_to_t1": {...}, "g_t1_to_t2": {...}, "d_t1": {...}, "d_t2": {...}},
     "intensity": {...}, "data": {...}}

so a network is rebuilt from the metadata with no Lightning import.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gan_init.networks.backbones import BackboneSpec
from gan_init.networks.cyclegan import CycleGANGenerator, PatchGANDiscriminator
from gan_init.nn.layers import Conv

METADATA_KEY = "gan_init"
METADATA_FORMAT = 1
DIRECTIONS = ("t2_to_t1", "t1_to_t2")
DOMAINS = ("t1", "t2")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: wrong kind, unreadable, unsafe, or keys that do not fit."""


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that say what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" in str(err).lower():
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(
                f"{path}: refused: unpickling it needs arbitrary code (objects beyond tensors, "
                f"dicts, lists and numbers), and checkpoints are only loaded with "
                f"weights_only=True. ({first})"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated?): {err}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt file?): "
            f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
        ) from None


def _conv_weight_owners(module: nn.Module) -> dict[str, Conv]:
    """``"<conv>.weight" -> Conv`` for every ``Conv`` of ``module``."""
    return {
        f"{name}.weight" if name else "weight": m
        for name, m in module.named_modules()
        if isinstance(m, Conv)
    }


def effective_state(module: nn.Module) -> dict[str, Tensor]:
    """``module``'s parameters and buffers by name, with each ``Conv`` weight replaced by its
    effective weight (what the layer computes with): the form :func:`copy_params` takes."""
    state = {name: t.detach() for name, t in module.state_dict().items()}
    for key, conv in _conv_weight_owners(module).items():
        state[key] = conv.effective_weight().detach()
    return state


# At most this many problems are listed in one error; the count says how many there were.
MAX_SHOWN = 12


def _fit_problems(
    src: Mapping[str, Tensor], dst: Mapping[str, Tensor], *, require_all: bool, allow_extra: bool
) -> list[str]:
    """Every way ``src`` does not fit ``dst`` by name: the one place keys and shapes are compared
    and worded."""
    problems = [] if src else ["no tensors in the source"]
    for key, tensor in src.items():
        if key not in dst:
            if not allow_extra:
                problems.append(f"unexpected key {key!r} (found shape {tuple(tensor.shape)})")
        elif tuple(tensor.shape) != tuple(dst[key].shape):
            problems.append(
                f"key {key!r}: expected shape {tuple(dst[key].shape)}, "
                f"found shape {tuple(tensor.shape)}"
            )
    if require_all:
        problems += [
            f"missing key {key!r} (expected shape {tuple(t.shape)})"
            for key, t in dst.items()
            if key not in src
        ]
    return problems


def _write(src: Mapping[str, Tensor], dst: nn.Module, effective: bool) -> list[str]:
    """Store the ``src`` tensors ``dst`` has (checked by :func:`copy_strict` first)."""
    dst_state = dst.state_dict()
    convs = _conv_weight_owners(dst) if effective else {}
    copied = []
    for key, tensor in src.items():
        if key not in dst_state:
            continue
        if key in convs:
            convs[key].set_effective_weight(tensor.to(convs[key].weight))
        else:
            dst_state[key].copy_(tensor.to(dst_state[key]))
        copied.append(key)
    return copied


@torch.no_grad()
def copy_strict(
    parts: Sequence[tuple[str, Mapping[str, Tensor], nn.Module]],
    *,
    what: str,
    fix: str,
    problems: Sequence[str] = (),
    require_all: bool = True,
    allow_extra: bool = False,
    effective: bool = True,
    check_only: bool = False,
) -> list[list[str]]:
    """Copy tensors into modules by name, strictly, all parts or nothing.

    Args:
        parts: ``(name, src_state, dst)``: copy ``src_state`` (name -> tensor, named as
            ``dst.state_dict()``) into ``dst``; ``name`` prefixes the part's problems ("" for
            none).
        what: what did not fit, the start of the error (``"the source does not fit the noise
            GAN"``).
        fix: what the user does about it, the end of the error.
        problems: problems the caller found already (reported with these, in one error).
        require_all: every parameter and buffer of each ``dst`` must be in its ``src_state``.
        allow_extra: ignore keys of ``src_state`` that ``dst`` lacks (otherwise an error).
        effective: write ``Conv`` weights through ``set_effective_weight`` (the values are
            effective weights, see :func:`effective_state`); False: store as is (both sides share
            the parameterization, e.g. a rebuilt network).
        check_only: run every check, copy nothing (no keys for any part).

    Every key and shape of every part is checked before anything is copied; the one-line
    ``CheckpointError`` names each key with the expected and the found shape, and the fix.
    Returns, per part, the copied keys.
    """
    found = list(problems)
    for name, src, dst in parts:
        head = f"{name}: " if name else ""
        found += [
            head + problem
            for problem in _fit_problems(
                src, dst.state_dict(), require_all=require_all, allow_extra=allow_extra
            )
        ]
    if found:
        shown = "; ".join(found[:MAX_SHOWN])
        more = f"; ... and {len(found) - MAX_SHOWN} more" if len(found) > MAX_SHOWN else ""
        raise CheckpointError(
            f"{what} ({len(found)} problem(s)); nothing was copied: {shown}{more}. Fix: {fix}"
        )
    if check_only:
        return [[] for _ in parts]
    return [_write(src, dst, effective) for _, src, dst in parts]


def copy_params(
    src_state: Mapping[str, Tensor],
    dst: nn.Module,
    *,
    require_all: bool = True,
    allow_extra: bool = False,
    effective: bool = True,
    source: str | None = None,
    fix: str | None = None,
) -> list[str]:
    """Copy ``src_state`` into ``dst`` by name, all or nothing: :func:`copy_strict` for one
    module. ``source`` names where the weights come from (a file) in the error; ``fix`` says
    what to do (default: make the weights with the same knobs as ``dst``). Returns the copied
    keys."""
    kind = type(dst).__name__
    what = f"{source + ': ' if source else ''}weights do not fit {kind}"
    fix = fix or f"give weights made with the same knobs as this {kind} (its state_dict's keys)"
    (copied,) = copy_strict(
        [("", src_state, dst)],
        what=what,
        fix=fix,
        require_all=require_all,
        allow_extra=allow_extra,
        effective=effective,
    )
    return copied


def is_project_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get(METADATA_KEY), dict)


def read_metadata(checkpoint: Mapping[str, Any], path: str | Path = "checkpoint") -> dict[str, Any]:
    """The ``gan_init`` metadata of a loaded project checkpoint, checked for format and stage."""
    meta = checkpoint.get(METADATA_KEY)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: no {METADATA_KEY!r} metadata; not a gan-init checkpoint")
    if meta.get("format") != METADATA_FORMAT:
        raise CheckpointError(
            f"{path}: metadata format {meta.get('format')!r}; this version reads format "
            f"{METADATA_FORMAT}"
        )
    if "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: gan-init checkpoint without a 'state_dict'")
    return meta


def sub_state(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Entries under ``prefix.`` with the prefix removed."""
    head = prefix + "."
    return {k[len(head) :]: v for k, v in state.items() if k.startswith(head)}


def build_network(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a network from its ``.config`` (as saved in checkpoint metadata)."""
    config = dict(config)
    kind = config.pop("network", None)
    if kind == "CycleGANGenerator":
        return CycleGANGenerator(BackboneSpec.from_dict(config["backbone"], source="checkpoint"))
    if kind == "PatchGANDiscriminator":
        return PatchGANDiscriminator(**config)
    raise CheckpointError(f"unknown network {kind!r} in checkpoint metadata")


def load_project_network(
    checkpoint: Mapping[str, Any], name: str, path: str | Path = "checkpoint"
) -> nn.Module:
    """Network ``name`` (e.g. ``g_t2_to_t1``) of a project CycleGAN checkpoint, rebuilt and
    loaded (stored weights: both sides have the same parameterization), in eval mode."""
    meta = read_metadata(checkpoint, path)
    if meta.get("stage") != "cyclegan":
        raise CheckpointError(
            f"{path}: a {meta.get('stage')!r} checkpoint; expected a 'cyclegan' checkpoint"
        )
    networks = meta.get("networks", {})
    if name not in networks:
        raise CheckpointError(f"{path}: no network {name!r} (has {sorted(networks)})")
    net = build_network(networks[name])
    weights = sub_state(checkpoint["state_dict"], name)
    if not weights:
        raise CheckpointError(f"{path}: state_dict has no keys under {name + '.'!r}")
    copy_params(
        weights,
        net,
        effective=False,
        source=f"{path}: {name}",
        fix="the file's weights disagree with its own gan_init metadata (edited, or written by "
        "another version): train the CycleGAN again with this version (gan-init fit --config "
        "experiments/configs/cyclegan_2d.yaml, or cyclegan_3d.yaml)",
    )
    return net.eval()
