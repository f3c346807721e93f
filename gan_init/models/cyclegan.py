"""CycleGAN (Zhu et al. 2017) for T1 <-> T2 MRI, 2D and 3D from one LightningModule.

Two generators (``g_t2_to_t1``, ``g_t1_to_t2``) and two PatchGAN discriminators (``d_t1`` judges
T1 images, ``d_t2`` judges T2 images), trained unpaired with the recipe of the paper:
least-squares adversarial loss (Mao et al. 2017; Zhu et al. sec. 4), cycle loss weight 10
(eq. 2-3), identity loss 0.5 x 10 (sec. 5.2), a pool of 50 earlier fakes per discriminator
(Shrivastava et al. 2017; sec. 4), Adam 2e-4 (0.5, 0.999), constant then linear decay to zero.

Validation runs on paired data and logs PSNR, SSIM and MAE of both translations against the true
pairs, plus the identity baseline (the T2 input scored against the T1 truth).
"""

from __future__ import annotations

import copy
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchmetrics.regression import MeanAbsoluteError

from gan_init.core.seeding import run_seed, step_generator
from gan_init.core.speed import fp32_outputs
from gan_init.core.visualize import AXIS_INDEX
from gan_init.networks.cyclegan import CycleGANGenerator, PatchGANDiscriminator
from gan_init.nn.layers import init_weights
from gan_init.transfer.checkpoints import METADATA_FORMAT, METADATA_KEY

# What the data modules do to intensities unless they say otherwise (``datamodule.intensity``):
# 0 -> -1 and the 99.5th percentile of the foreground (non-zero voxels) -> 1, clipped.
DEFAULT_INTENSITY = {
    "range": [-1.0, 1.0],
    "scaling": "percentile",
    "low": 0.0,
    "percentile_high": 99.5,
    "foreground": "nonzero",
    "clip": True,
}
# 2D models see slices along this axis of the RAS-canonical volume (``datamodule.slicing``);
# ``display: upright`` = each RAS plane [u, v] turned by gan_init.core.visualize.upright.
DEFAULT_SLICING = {"axis": 2, "orientation": "RAS"}
# Checkpoint key of the seed of the training streams (the image pools' choices).
RNG_KEY = "gan_init_rng"


class ImagePool:
    """A buffer of up to ``size`` earlier fakes (Shrivastava et al. 2017; Zhu et al. sec. 4).

    ``query(images)`` returns a batch where each image is, with probability 1/2 once the pool is
    full, swapped for a stored one (and stored in its place), so the discriminator sees a history
    of generators. ``[B, C, *S] -> [B, C, *S]``. Its contents are checkpoint state; its choices
    come from ``generator`` (a CPU generator; the global one when None).
    """

    def __init__(self, size: int = 50) -> None:
        self.size = size
        self.images: list[Tensor] = []

    def query(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=generator)) < 0.5:
                i = int(torch.randint(self.size, (), generator=generator))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        stacked = torch.cat(self.images, 0).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        self.size = int(state["size"])
        images = state["images"]
        self.images = [im.unsqueeze(0).to(device) for im in images] if images.numel() else []

    def __len__(self) -> int:
        return len(self.images)


def linear_decay(epochs_constant: int, epochs_decay: int):
    """LR factor of epoch ``e`` (0-based): 1 for ``epochs_constant`` epochs, then linearly down
    over ``epochs_decay`` epochs to ``1 / (epochs_decay + 1)`` in the last one (Zhu et al.
    sec. 4: "linearly decay the rate to zero"; the reference ``lambda_rule``)."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - epochs_constant) / float(epochs_decay + 1)

    return factor


class CycleGAN(pl.LightningModule):
    """CycleGAN between T1 (``batch["t1"]``) and T2 (``batch["t2"]``) images, ``[B, 1, *S]`` in
    [-1, 1]. Train batches are unpaired; validation batches are paired.

    Args:
        generator: template generator; becomes ``g_t2_to_t1``, and ``g_t1_to_t2`` is a second one
            built from its spec. Both are re-initialized N(0, ``init_std``) as in the paper.
        discriminator: template PatchGAN; becomes ``d_t1``, and ``d_t2`` is built from its knobs.
        lambda_cycle: cycle-consistency weight (eq. 3, lambda = 10).
        lambda_identity: identity weight as a fraction of ``lambda_cycle`` (0.5, sec. 5.2).
        pool_size: earlier fakes kept per discriminator (50).
        lr, betas: Adam of both generators and of both discriminators.
        epochs_constant, epochs_decay: LR constant for this many epochs, then linear to zero.
        init: ``normal`` (N(0, init_std), the paper) or ``he``; ``none`` keeps the given weights.
        ssim_kernel: Gaussian window of the validation SSIM (odd; small volumes need small ones).
    """

    def __init__(
        self,
        generator: CycleGANGenerator,
        discriminator: PatchGANDiscriminator,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        epochs_constant: int = 100,
        epochs_decay: int = 100,
        init: str = "normal",
        init_std: float = 0.02,
        ssim_kernel: int = 11,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.automatic_optimization = False
        d = generator.spec.spatial_dims
        if discriminator.spatial_dims != d:
            raise ValueError(
                f"generator is {d}D (spatial_dims={d}) but discriminator is "
                f"{discriminator.spatial_dims}D; use the same spatial_dims for both"
            )
        self.spatial_dims = d
        self.g_t2_to_t1 = generator
        self.g_t1_to_t2 = CycleGANGenerator(generator.spec)
        self.d_t1 = discriminator
        self.d_t2 = PatchGANDiscriminator(**discriminator.knobs)
        for net in (self.g_t2_to_t1, self.g_t1_to_t2, self.d_t1, self.d_t2):
            if init != "none":
                init_weights(net, init, init_std)
            fp32_outputs(net)  # losses in fp32 under bf16 autocast (trainer.precision: bf16-mixed)
        self.pool_t1 = ImagePool(pool_size)  # fake T1 images shown to d_t1
        self.pool_t2 = ImagePool(pool_size)
        # Seed of the pools' choices (the run's seed: LightningCLI seeds before building the
        # model); a checkpoint keeps it, and each step's choices are a function of (seed, global
        # step, rank), so a resumed run makes the uninterrupted run's choices.
        self.rng_seed = run_seed()
        self.intensity: dict[str, Any] = dict(DEFAULT_INTENSITY)
        self.data_info: dict[str, Any] = {"slicing": dict(DEFAULT_SLICING)}

        # Metrics are modules, so Lightning resets them per epoch and syncs them across ranks.
        per_image = tuple(range(1, 2 + d))  # PSNR per image, then averaged
        metrics: dict[str, nn.Module] = {}
        for direction in ("t2_to_t1", "t1_to_t2"):
            metrics[f"psnr_{direction}"] = PeakSignalNoiseRatio(data_range=2.0, dim=per_image)
            # Gaussian window of side ssim_kernel (sigma 1.43 at 11, about Wang et al.'s 1.5).
            metrics[f"ssim_{direction}"] = StructuralSimilarityIndexMeasure(
                data_range=2.0, kernel_size=ssim_kernel, sigma=(ssim_kernel - 1) / 7.0
            )
            metrics[f"mae_{direction}"] = MeanAbsoluteError()
        metrics["psnr_identity_t2_to_t1"] = PeakSignalNoiseRatio(data_range=2.0, dim=per_image)
        self.val_metrics = nn.ModuleDict(metrics)

    # ------------------------------------------------------------------ setup and optimizers

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is None:
            return
        data_dims = getattr(datamodule, "spatial_dims", None)
        if data_dims is not None and data_dims != self.spatial_dims:
            raise ValueError(
                f"data.spatial_dims={data_dims} but the CycleGAN networks have spatial_dims="
                f"{self.spatial_dims}; set both to the same value (2 for slices, 3 for volumes)"
            )
        if isinstance(getattr(datamodule, "intensity", None), dict):
            self.intensity = dict(datamodule.intensity)
        # The scale the networks learn at: a transfer to a noise GAN of another size is refused
        # unless asked for (gan_init.transfer.transfer.check_scale).
        shape = getattr(datamodule, "image_shape", None)
        size = getattr(datamodule, "size", None)
        if shape is None and isinstance(size, int):
            shape = (size,) * self.spatial_dims
        if shape is not None:
            self.data_info["image_shape"] = [int(n) for n in shape]
        spacing = getattr(datamodule, "voxel_spacing", None)
        if spacing is None:  # NiftiFolderDataModule keeps it in its preprocessing settings
            spacing = getattr(getattr(datamodule, "prep", None), "spacing", None)
        self.data_info["voxel_spacing"] = None if spacing is None else float(spacing)
        if isinstance(getattr(datamodule, "slicing", None), dict):
            self.data_info["slicing"] = dict(datamodule.slicing)
        elif getattr(datamodule, "axis", None) in AXIS_INDEX and self.spatial_dims == 2:
            # The ICBM/NIfTI modules: RAS volumes, planes named, slices shown upright.
            plane = datamodule.axis
            self.data_info["slicing"] = {
                "axis": AXIS_INDEX[plane], "plane": plane, "orientation": "RAS",
                "display": "upright",
            }  # fmt: skip

    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(float(b) for b in hp.betas)  # YAML [0, 0.99] would give an int
        opt_g = torch.optim.Adam(
            [*self.g_t2_to_t1.parameters(), *self.g_t1_to_t2.parameters()], lr=hp.lr, betas=betas
        )
        opt_d = torch.optim.Adam(
            [*self.d_t1.parameters(), *self.d_t2.parameters()], lr=hp.lr, betas=betas
        )
        schedule = linear_decay(hp.epochs_constant, hp.epochs_decay)
        scheds = [torch.optim.lr_scheduler.LambdaLR(opt, schedule) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds

    # ------------------------------------------------------------------ losses

    @staticmethod
    def adversarial_loss(logits: Tensor, real: bool) -> Tensor:
        """Least-squares GAN loss (Mao et al. 2017): (D(x) - target)^2 over all patches."""
        return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))

    def generator_phase(self, real_t1: Tensor, real_t2: Tensor) -> dict[str, Tensor]:
        """G update: adversarial + cycle (eq. 2) + identity losses, both generators at once.

        ``real_*``: ``[B, 1, *S]``. Returns the losses and the fakes (for the D phase).
        """
        fake_t1 = self.g_t2_to_t1(real_t2)
        fake_t2 = self.g_t1_to_t2(real_t1)
        loss_gan = self.adversarial_loss(self.d_t1(fake_t1), True) + self.adversarial_loss(
            self.d_t2(fake_t2), True
        )
        # Cycle consistency, eq. 2: F(G(x)) ~ x and G(F(y)) ~ y, L1.
        loss_cycle = F.l1_loss(self.g_t1_to_t2(fake_t1), real_t2) + F.l1_loss(
            self.g_t2_to_t1(fake_t2), real_t1
        )
        loss_cycle = self.hparams.lambda_cycle * loss_cycle
        loss_idt = torch.zeros((), device=real_t1.device)
        if self.hparams.lambda_identity > 0:
            # Identity loss (sec. 5.2): a generator fed its target domain should change nothing.
            loss_idt = F.l1_loss(self.g_t2_to_t1(real_t1), real_t1) + F.l1_loss(
                self.g_t1_to_t2(real_t2), real_t2
            )
            loss_idt = self.hparams.lambda_cycle * self.hparams.lambda_identity * loss_idt
        loss_g = loss_gan + loss_cycle + loss_idt
        return {
            "loss_g": loss_g,
            "loss_gan": loss_gan,
            "loss_cycle": loss_cycle,
            "loss_idt": loss_idt,
            "fake_t1": fake_t1.detach(),
            "fake_t2": fake_t2.detach(),
        }

    def discriminator_phase(
        self,
        real_t1: Tensor,
        real_t2: Tensor,
        fake_t1: Tensor,
        fake_t2: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """D update: least squares on reals and on pooled fakes, halved (Zhu et al. sec. 4).
        ``generator`` makes the pools' choices."""
        pooled_t1 = self.pool_t1.query(fake_t1, generator)
        pooled_t2 = self.pool_t2.query(fake_t2, generator)
        loss_d_t1 = 0.5 * (
            self.adversarial_loss(self.d_t1(real_t1), True)
            + self.adversarial_loss(self.d_t1(pooled_t1), False)
        )
        loss_d_t2 = 0.5 * (
            self.adversarial_loss(self.d_t2(real_t2), True)
            + self.adversarial_loss(self.d_t2(pooled_t2), False)
        )
        return loss_d_t1 + loss_d_t2

    # ------------------------------------------------------------------ training

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        real_t1, real_t2 = batch["t1"], batch["t2"]
        opt_g, opt_d = self.optimizers()
        pool_rng = step_generator(self.rng_seed, self.global_step, self.global_rank, "image_pool")

        self.toggle_optimizer(opt_g)  # D frozen while G learns to fool it
        g = self.generator_phase(real_t1, real_t2)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g["loss_g"])
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        loss_d = self.discriminator_phase(
            real_t1, real_t2, g["fake_t1"], g["fake_t2"], generator=pool_rng
        )
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        batch_size = real_t1.shape[0]
        log = dict(on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/loss_g", g["loss_g"], prog_bar=True, **log)
        self.log("train/loss_d", loss_d, prog_bar=True, **log)
        self.log("train/loss_gan", g["loss_gan"], **log)
        self.log("train/loss_cycle", g["loss_cycle"], **log)
        self.log("train/loss_idt", g["loss_idt"], **log)
        self.log("train/lr", opt_g.param_groups[0]["lr"], on_step=True, batch_size=batch_size)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # A run resumed from a checkpoint of an epoch's last batch skips that epoch's end (Lightning
        # counts the epoch as done, and calls no epoch hook before the next batch), so the LR
        # steps it missed are taken here: the LR stays a function of the epoch, as in the run
        # that was never stopped.
        for scheduler in self.lr_schedulers():
            while scheduler.last_epoch < self.current_epoch:
                scheduler.step()

    def on_train_epoch_end(self) -> None:
        for scheduler in self.lr_schedulers():
            scheduler.step()

    # ------------------------------------------------------------------ validation

    def translate(self, x: Tensor, direction: str = "t2_to_t1") -> Tensor:
        """``[B, 1, *S] -> [B, 1, *S]`` with the ``direction`` generator."""
        return getattr(self, f"g_{direction}")(x).contiguous()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Paired batch -> metrics; returns the images the grid callback shows."""
        real_t1, real_t2 = batch["t1"], batch["t2"]
        # Generators crop odd sizes back from a padded multiple of 2**n_down: make contiguous.
        fake_t1 = self.g_t2_to_t1(real_t2).contiguous()
        fake_t2 = self.g_t1_to_t2(real_t1).contiguous()
        rec_t2 = self.g_t1_to_t2(fake_t1).contiguous()
        pairs = {"t2_to_t1": (fake_t1, real_t1), "t1_to_t2": (fake_t2, real_t2)}
        for direction, (pred, target) in pairs.items():
            for kind in ("psnr", "ssim", "mae"):
                metric = self.val_metrics[f"{kind}_{direction}"]
                metric(pred, target)
                self.log(f"val/{kind}_{direction}", metric, batch_size=real_t1.shape[0])
        identity = self.val_metrics["psnr_identity_t2_to_t1"]
        identity(real_t2, real_t1)
        self.log("val/psnr_identity_t2_to_t1", identity, batch_size=real_t1.shape[0])
        return {
            "real_t2": real_t2, "fake_t1": fake_t1, "real_t1": real_t1, "fake_t2": fake_t2,
            "rec_t2": rec_t2,
        }  # fmt: skip

    # ------------------------------------------------------------------ checkpoints

    def metadata(self) -> dict[str, Any]:
        """What rebuilds the networks and undoes the data scaling (``checkpoint["gan_init"]``)."""
        return {
            "format": METADATA_FORMAT,
            "stage": "cyclegan",
            "spatial_dims": self.spatial_dims,
            "networks": {
                name: copy.deepcopy(getattr(self, name).config)
                for name in ("g_t2_to_t1", "g_t1_to_t2", "d_t1", "d_t2")
            },
            "intensity": copy.deepcopy(self.intensity),
            "data": copy.deepcopy(self.data_info),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[METADATA_KEY] = self.metadata()
        checkpoint["image_pools"] = {"t1": self._pool_state("t1"), "t2": self._pool_state("t2")}
        checkpoint[RNG_KEY] = {"seed": self.rng_seed}

    def _pool_state(self, name: str) -> dict[str, Any]:
        """One pool's state; under DDP each rank has its own pool, so all of them are gathered
        (``images_per_rank``: ``[world, N, C, *S]``; every rank saves a checkpoint together)."""
        pool = getattr(self, f"pool_{name}")
        state = pool.state_dict()
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1 and len(pool):
            images = torch.cat(pool.images, 0).contiguous()
            state["images_per_rank"] = self.all_gather(images).cpu()
        return state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get(METADATA_KEY, {})
        if meta.get("spatial_dims", self.spatial_dims) != self.spatial_dims:
            raise ValueError(
                f"checkpoint is {meta['spatial_dims']}D but this CycleGAN is {self.spatial_dims}D"
            )
        self.intensity = dict(meta.get("intensity", self.intensity))
        self.data_info = dict(meta.get("data", self.data_info))
        self.rng_seed = int(checkpoint.get(RNG_KEY, {}).get("seed", self.rng_seed))
        pools = checkpoint.get("image_pools", {})
        world = self.trainer.world_size if self._trainer is not None else 1
        for name in ("t1", "t2") if "t1" in pools else ():
            state = dict(pools[name])
            per_rank = state.pop("images_per_rank", None)
            if per_rank is not None and per_rank.shape[0] == world:
                state["images"] = per_rank[self.global_rank]  # this rank's own pool
            getattr(self, f"pool_{name}").load_state_dict(state, self.device)
