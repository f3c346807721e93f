"""Training speed options shared by both stages: channels-last memory format, ``torch.compile``,
TF32 matmuls on CUDA, fp32 network outputs under bf16 autocast, activation checkpointing.

bf16 itself is Lightning's: ``trainer.precision: bf16-mixed`` runs ``training_step`` under
``torch.autocast`` (CPU and CUDA, manual optimization included). The options here are set by the
``gan_init.callbacks.SpeedOptions`` callback (config keys ``channels_last``, ``compile``,
``tf32``, ``checkpoint_trunk``), which calls :func:`apply_speed_options` on the networks a
LightningModule names in ``speed_networks()``.

Why each exists (measured on this project's CPU by ``benchmarks/speed.py``): the convolutions of
the small CPU networks are memory bound, so bf16 (AMX) and fused kernels (``torch.compile``)
help most; channels-last lets oneDNN skip layout reorders around each convolution.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from gan_init.nn.ops import CHANNELS_LAST


def memory_format(spatial_dims: int) -> torch.memory_format:
    """The channels-last format of ``spatial_dims``-D images: NHWC (2D) or NDHWC (3D)."""
    return CHANNELS_LAST[spatial_dims]


def to_channels_last(net: nn.Module, spatial_dims: int) -> nn.Module:
    """Convert the convolution weights of ``net`` (in place, same Parameter objects, so an
    optimizer built before keeps them) and, by a forward pre-hook, its input."""
    fmt = memory_format(spatial_dims)
    rank = 2 + spatial_dims
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == rank:
                p.data = p.data.contiguous(memory_format=fmt)
    if not getattr(net, "_gan_init_channels_last", False):
        # The input too: oneDNN follows the input's format. (Instance norm returns NCHW, so
        # networks with it gain little: benchmarks/speed.py measures.)
        net.register_forward_pre_hook(
            lambda m, args: (
                (args[0].contiguous(memory_format=fmt), *args[1:])
                if args and torch.is_tensor(args[0]) and args[0].dim() == rank
                else None
            )
        )
        net._gan_init_channels_last = True
    return net


def _fp32_output(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return output.float() if torch.is_tensor(output) and output.is_floating_point() else output


def fp32_outputs(net: nn.Module) -> nn.Module:
    """Give ``net``'s output in fp32 under autocast (a forward hook), so losses, the critic's
    scores and the gradient penalty's norms are computed in fp32 while the convolutions run in
    bf16 (``x_hat``'s gradient is then fp32 too: autograd returns the input's dtype)."""
    if not getattr(net, "_gan_init_fp32_output", False):
        net.register_forward_hook(_fp32_output)
        net._gan_init_fp32_output = True
    return net


def compile_unavailable_reason(device: torch.device | str = "cpu") -> str | None:
    """Why ``torch.compile`` cannot run here (None when it can): no dynamo on this Python/OS,
    or no C++ compiler for the CPU (inductor builds C++ kernels)."""
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return "torch.compile (dynamo) is not supported on this Python/platform"
    except Exception as err:  # pragma: no cover - broken installs
        return f"torch._dynamo failed to import ({err})"
    if torch.device(device).type == "cpu":
        try:
            from torch._inductor import config as inductor_config

            cxx = inductor_config.cpp.cxx[-1] if inductor_config.cpp.cxx else None
        except Exception:  # pragma: no cover
            cxx = None
        candidates = [c for c in (cxx, "g++", "c++", "clang++") if c]
        if not any(shutil.which(c) for c in candidates):
            return (
                "no C++ compiler found for inductor's CPU kernels (tried "
                + ", ".join(candidates)
                + ")"
            )
    return None


def compile_network(net: nn.Module, name: str, device: torch.device | str = "cpu") -> bool:
    """``net.compile()`` in place (state_dict keys unchanged), or one warning and eager mode when
    the compiler is missing. A compile that fails later, at the first call, also falls back to
    eager with a warning (``torch._dynamo.config.suppress_errors``). Returns whether compiled."""
    reason = compile_unavailable_reason(device)
    if reason is not None:
        warnings.warn(
            f"SpeedOptions compile=true: {reason}; running {name} uncompiled. Install a C++ "
            "compiler (e.g. apt install g++) or set --trainer.callbacks...compile=false",
            stacklevel=2,
        )
        return False
    import torch._dynamo as dynamo

    dynamo.config.suppress_errors = True
    net.compile()
    return True


def enable_tf32() -> None:
    """TF32 matmuls and convolutions on CUDA (Ampere and later); no effect on the CPU."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")


def apply_speed_options(
    networks: Mapping[str, nn.Module],
    spatial_dims: int,
    *,
    channels_last: bool = False,
    compile: bool = False,
    tf32: bool = False,
    checkpoint_trunk: bool = False,
    device: torch.device | str = "cpu",
) -> dict[str, bool]:
    """Apply the options to each network of ``networks`` (name -> module, in place). Returns
    ``{name: compiled}``. ``checkpoint_trunk`` turns on activation checkpointing in every
    ``Trunk`` inside the networks (recompute its residual blocks in the backward pass)."""
    from gan_init.networks.backbones import Trunk

    if tf32:
        enable_tf32()
    compiled = {}
    for name, net in networks.items():
        if checkpoint_trunk:
            for module in net.modules():
                if isinstance(module, Trunk):
                    module.checkpointing = True
        if channels_last:
            to_channels_last(net, spatial_dims)
        compiled[name] = compile_network(net, name, device) if compile else False
    return compiled


def is_logging_step(module: nn.Module) -> bool:
    """Whether Lightning writes this training step's on-step metrics to the loggers (every
    ``trainer.log_every_n_steps``): values that cost a device sync are logged only then."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None:
        return True
    return bool(getattr(trainer._logger_connector, "should_update_logs", True))
