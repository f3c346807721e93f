"""``gan-init memory``: the peak memory of one training step of a config, estimated on the CPU.

    gan-init memory --config experiments/configs/noise_3d_gpu.yaml [--checkpoint_trunk]

Method (measure small, extrapolate): the model is built as configured, and one generator phase
and one discriminator phase (with the gradient penalty for the noise GAN) run on the CPU at
batch 1 and at two reduced image sides (the noise GAN is rebuilt with a smaller
``image_size``: its top level is where the activations are). Counted exactly there: the tensors
autograd saves for backward (``torch.autograd.graph.saved_tensors_hooks``, each storage once).
These grow with batch x voxels, so they are scaled to the config's batch and side; the smaller
side's extrapolation to the larger one is printed as a check. Exact at full size: parameters,
gradients, Adam's two moments and the EMA generator. Estimate = those + the larger phase's
activations; allocator fragmentation, cuDNN workspaces and the CUDA context (0.5-1 GB) are on
top.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import torch
import yaml

from gan_init.core.speed import apply_speed_options


def _build(model_config: dict[str, Any]) -> torch.nn.Module:
    from jsonargparse import ArgumentParser
    from pytorch_lightning import LightningModule

    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningModule, "model")
    cfg = parser.parse_object({"model": copy.deepcopy(model_config)})
    return parser.instantiate(cfg).model


def _with_side(model_config: dict[str, Any], side: int) -> dict[str, Any]:
    """The model config with the networks' ``image_size`` (noise GAN) set to ``side``."""
    config = copy.deepcopy(model_config)
    for net in ("generator", "discriminator"):
        init = config["init_args"][net].setdefault("init_args", {})
        if "image_size" in init:
            init["image_size"] = side
    return config


def _batch_size(config: dict[str, Any]) -> int:
    for cb in config.get("trainer", {}).get("callbacks", []) or []:
        if str(cb.get("class_path", "")).endswith("ProgressiveSchedule"):
            return int(cb["init_args"]["batch_size"][-1])
    return int(config["data"]["init_args"]["batch_size"])


class SavedBytes:
    """Bytes of the distinct storages autograd saves for backward inside the context."""

    def __init__(self) -> None:
        self.storages: dict[int, int] = {}
        self.held: list = []

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        # Held until the context ends (as a training step holds them until backward), so no
        # freed block is reused and counted twice under the same address.
        storage = t.untyped_storage()
        self.held.append(storage)
        self.storages[storage.data_ptr()] = storage.nbytes()
        return t

    def __enter__(self) -> SavedBytes:
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)
        self.held.clear()

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def saved_activations(model: torch.nn.Module, batch: int, side: int) -> dict[str, int]:
    """Bytes autograd saves in the G phase and the D phase of one step of a CycleGAN or
    ProgressiveGAN ``model`` at ``batch`` images of side ``side``."""
    x = torch.zeros(batch, 1, *(side,) * int(model.spatial_dims))
    if hasattr(model, "generator_phase"):  # CycleGAN
        with SavedBytes() as g:
            out = model.generator_phase(x, x)
        with SavedBytes() as d:
            for net, fake in ((model.d_t1, out["fake_t1"]), (model.d_t2, out["fake_t2"])):
                net(x).mean().add(net(fake).mean())
    else:
        from gan_init.models.progressive import gradient_penalty

        z = torch.zeros(batch, model.latent_dim)
        with SavedBytes() as d:
            with torch.no_grad():
                fake = model.generator(z)
            model.discriminator(fake).mean() - model.discriminator(x).mean()
            gradient_penalty(model.discriminator, x, fake)
        with SavedBytes() as g:
            model.discriminator(model.generator(z)).mean()
    return {"g_phase": g.total, "d_phase": d.total}


def estimate(config: dict[str, Any], checkpoint_trunk: bool = False) -> dict[str, Any]:
    """Peak-memory estimate (bytes) of one training step of a training ``config`` (a dict)."""
    model_config = config["model"]
    side = int(config["data"]["init_args"]["size"])
    batch = _batch_size(config)
    full = _build(model_config)
    d = int(full.spatial_dims)
    trained = [
        m
        for n, m in full.named_children()
        if n != "generator_ema" and any(True for _ in m.parameters())
    ]
    params = sum(p.numel() * p.element_size() for m in trained for p in m.parameters())
    ema = getattr(full, "generator_ema", None)
    ema_bytes = sum(p.numel() * p.element_size() for p in ema.parameters()) if ema else 0
    del full
    # The noise GAN's side is start_resolution x 2^k; a PatchGAN needs >= 24 px (n_layers 3).
    progressive = "image_size" in model_config["init_args"]["generator"].get("init_args", {})
    sides = (
        (side // 8, side // 4, side // 2)
        if progressive
        else tuple(side * k // 8 for k in (3, 4, 5))
    )
    small = {}
    for s in sides:
        try:
            model = _build(_with_side(model_config, s))
        except Exception:
            if s == sides[0]:  # the check side is too small for this architecture: no check
                continue
            raise
        if checkpoint_trunk:
            nets = {n: m for n, m in model.named_children() if n != "generator_ema"}
            apply_speed_options(nets, d, checkpoint_trunk=True)
        small[s] = saved_activations(model, 1, s)
    # saved = a + b * voxels (a: weights and other per-step constants autograd keeps), fitted
    # on the two larger sides, checked on the smallest, applied to batch x the config's voxels.
    v0, v1, v2 = (s**d for s in sides)
    acts, check = {}, {}
    for k in small[sides[2]]:
        b = (small[sides[2]][k] - small[sides[1]][k]) / (v2 - v1)
        a = small[sides[1]][k] - b * v1
        acts[k] = int(a + b * batch * side**d)
        if sides[0] in small:
            check[k] = (a + b * v0) / max(small[sides[0]][k], 1)
    fixed = 4 * params + ema_bytes  # weights, gradients, Adam exp_avg and exp_avg_sq; EMA G
    return {
        "batch": batch, "side": side, "spatial_dims": d, "checkpoint_trunk": checkpoint_trunk,
        "weights_grads_adam_ema": fixed, "activations": acts,
        "peak_estimate": fixed + max(acts.values()),
        "extrapolation_check": {k: round(v, 3) for k, v in check.items()},
        "measured_sides": list(sides),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gan-init memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, action="append", help="a training config")
    parser.add_argument("--checkpoint_trunk", action="store_true", help="trunk recomputed")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    for path in args.config:
        config = yaml.safe_load(open(path))
        mem = estimate(config, args.checkpoint_trunk)
        gib = lambda b: f"{b / 2**30:.2f} GiB"  # noqa: E731
        side = "x".join([str(mem["side"])] * mem["spatial_dims"])
        print(
            f"{path}: batch {mem['batch']} at {side}"
            f"{' (trunk checkpointed)' if args.checkpoint_trunk else ''}: peak ~ "
            f"{gib(mem['peak_estimate'])} (weights+grads+Adam+EMA "
            f"{gib(mem['weights_grads_adam_ema'])}; activations G phase "
            f"{gib(mem['activations']['g_phase'])}, D phase {gib(mem['activations']['d_phase'])};"
            f" fit at sides {mem['measured_sides'][1:]}, predicted/measured at side "
            f"{mem['measured_sides'][0]}: {mem['extrapolation_check']})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
