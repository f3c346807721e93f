"""Speed options of a training run, as config keys (``gan_init.core.speed`` has the how and why).

trainer:
  precision: bf16-mixed          # Lightning's autocast (CPU with AMX/AVX-512, or CUDA)
  callbacks:
    - class_path: gan_init.callbacks.SpeedOptions
      init_args: {channels_last: true, compile: false, tf32: true, checkpoint_trunk: false}
"""

from __future__ import annotations

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from gan_init.core.speed import apply_speed_options

# The trained networks of each stage (the EMA generator only samples, under no_grad).
NETWORK_NAMES = ("g_t2_to_t1", "g_t1_to_t2", "d_t1", "d_t2", "generator", "discriminator")


def trained_networks(pl_module: LightningModule) -> dict[str, nn.Module]:
    """``{name: network}`` of the networks ``pl_module`` trains (CycleGAN or ProgressiveGAN)."""
    nets = {n: getattr(pl_module, n) for n in NETWORK_NAMES if hasattr(pl_module, n)}
    if not nets:
        raise ValueError(
            f"SpeedOptions: {type(pl_module).__name__} has none of the networks {NETWORK_NAMES}; "
            "use it with gan_init.models.CycleGAN or gan_init.models.ProgressiveGAN"
        )
    return nets


class SpeedOptions(Callback):
    """Apply the speed options to the trained networks once, at setup (before the strategy moves
    the model to its device and builds the optimizers; the memory format survives the move).

    Args:
        channels_last: convolution weights (and so activations) in NHWC / NDHWC.
        compile: ``torch.compile`` each trained network (one warning and eager mode where the
            compiler is missing or fails). Pays a compile time of about a minute per network
            shape on a 2-core CPU; worth it for long runs only.
        tf32: TF32 matmuls/convolutions on CUDA (no effect on the CPU).
        checkpoint_trunk: recompute the generator trunk's activations in the backward pass
            (``torch.utils.checkpoint``): less memory for 3D at GPU scale, some more time.
    """

    def __init__(
        self,
        channels_last: bool = False,
        compile: bool = False,
        tf32: bool = True,
        checkpoint_trunk: bool = False,
    ) -> None:
        self.channels_last = channels_last
        self.compile = compile
        self.tf32 = tf32
        self.checkpoint_trunk = checkpoint_trunk
        self.compiled: dict[str, bool] = {}
        self._applied = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._applied:
            return
        self._applied = True
        self.compiled = apply_speed_options(
            trained_networks(pl_module),
            int(pl_module.spatial_dims),
            channels_last=self.channels_last,
            compile=self.compile,
            tf32=self.tf32,
            checkpoint_trunk=self.checkpoint_trunk,
            device=trainer.strategy.root_device,
        )
        rank_zero_info(
            f"SpeedOptions: precision={trainer.precision}, channels_last={self.channels_last}, "
            f"compiled={[n for n, c in self.compiled.items() if c]}, "
            f"checkpoint_trunk={self.checkpoint_trunk}"
        )
