"""The progressive noise-to-image GAN as a LightningModule (Karras et al. 2018).

Losses: WGAN-GP (Gulrajani et al. 2017, eq. 3, lambda = 10) plus the drift term
``eps_drift * E[D(x)^2]`` with ``eps_drift = 1e-3`` (Karras et al. 2018, appendix A.1). Adam
lr 1e-3, betas (0, 0.99). The networks are injected; the schedule (level, alpha, batch size) and
the EMA of G are driven by callbacks (``gan_init.callbacks``). Optionally the critic sees
differentiably augmented images (``augment``, DiffAugment, Zhao et al. 2020), and ``stress``
scales both learning rates (a knob that makes training fail more often, issue 21).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from pytorch_lightning import LightningModule
from pytorch_lightning.utilities import AttributeDict
from torch import Tensor, nn

from gan_init.core.seeding import run_seed, step_generator
from gan_init.core.speed import fp32_outputs, is_logging_step
from gan_init.networks.progressive import NoiseGenerator, ProgressiveDiscriminator
from gan_init.nn.blocks import downsample2x, upsample2x
from gan_init.nn.diffaugment import DiffAugment

CHECKPOINT_FORMAT = 1
# Checkpoint key of the seed of the training streams (latents, gradient-penalty mixing).
RNG_KEY = "gan_init_rng"


def gradient_penalty(
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3): ``E[(||grad_x D(x_hat)||_2 - 1)^2]`` with
    ``x_hat = eps * real + (1 - eps) * fake``, ``eps ~ U[0, 1]`` per sample.

    ``real, fake: [B, C, *S]``; ``eps: [B]`` (drawn from ``generator`` when None). Returns a
    scalar that keeps the graph (the penalty is differentiated w.r.t. the critic's weights).
    """
    if eps is None:
        eps = torch.rand(real.shape[0], generator=generator, device=real.device, dtype=real.dtype)
    eps = eps.reshape(-1, *(1,) * (real.dim() - 1))
    x_hat = torch.lerp(fake.detach(), real.detach(), eps).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return (norms - 1.0).pow(2).mean()


def real_at(images: Tensor, resolution: int, alpha: float | Tensor) -> Tensor:
    """Real images shown at ``resolution`` with the generator's fade-in (Karras et al. 2018,
    sec. 3): average-pool to the level's side, and while fading in blend with the image
    down- and up-sampled once more (the previous level's view). ``[B, C, *S] -> [B, C, *R]``."""
    side = images.shape[-1]
    if side % resolution or any(n != side for n in images.shape[2:]):
        raise ValueError(
            f"real images of shape {tuple(images.shape[2:])} cannot be shown at side "
            f"{resolution}: expected a cube/square whose side is {resolution} x 2^k"
        )
    while images.shape[-1] > resolution:
        images = downsample2x(images)
    # A Python float (the training step passes one) decides without a device sync.
    if (alpha if isinstance(alpha, float | int) else float(alpha)) >= 1.0:
        return images
    alpha = torch.as_tensor(alpha, dtype=images.dtype, device=images.device)
    lower = upsample2x(downsample2x(images), "nearest")
    return torch.lerp(lower, images, alpha)


NETWORKS = ("generator", "discriminator")


def _lr_parts(model: nn.Module) -> list[str]:
    return [
        f"{net}.{name}" for net in NETWORKS for name, _ in model.get_submodule(net).named_children()
    ]


def check_lr_mult(model: nn.Module, lr_mult: dict[str, float]) -> dict[str, float]:
    """``lr_mult`` with each prefix checked to name a module of G or D (``generator.trunk``,
    ``discriminator``, ``generator.decoder.up1``), each multiplier finite and >= 0."""
    for prefix, mult in lr_mult.items():
        try:
            known = prefix.split(".")[0] in NETWORKS and model.get_submodule(prefix) is not None
        except AttributeError:
            known = False
        if not known:
            raise ValueError(
                f"model.init_args.lr_mult: {prefix!r} is no part of the noise GAN; valid parts: "
                f"{', '.join(_lr_parts(model))} (or a module path under one, or a whole network)"
            )
        if not 0.0 <= float(mult) < float("inf"):
            raise ValueError(f"model.init_args.lr_mult: {prefix}: {mult}: expected a finite >= 0")
    return {prefix: float(mult) for prefix, mult in lr_mult.items()}


def lr_param_groups(
    network: nn.Module, name: str, lr: float, lr_mult: dict[str, float]
) -> list[dict[str, Any]]:
    """Adam parameter groups of ``network`` (``name``: ``generator`` or ``discriminator``): each
    parameter gets ``lr`` times the multiplier of the longest ``lr_mult`` prefix it lies under
    (1 for none). Groups are named by their prefix (``default``: no prefix)."""
    groups: dict[str, dict[str, Any]] = {}
    for param_name, param in network.named_parameters():
        full = f"{name}.{param_name}"
        under = [p for p in lr_mult if full == p or full.startswith(p + ".")]
        prefix = max(under, key=len) if under else "default"
        mult = lr_mult[prefix] if under else 1.0
        group = groups.setdefault(prefix, {"name": prefix, "lr": lr * mult, "params": []})
        group["params"].append(param)
    return list(groups.values())


def check_stress(stress: float) -> float:
    """``stress`` as a float, refused in one line unless finite and > 0."""
    if not 0.0 < float(stress) < float("inf"):
        raise ValueError(
            f"--model.init_args.stress={stress}: expected a finite learning-rate multiplier > 0 "
            "(1: the tuned rates; above 1 training fails more often)"
        )
    return float(stress)


def _grad_norm(params: list[nn.Parameter]) -> Tensor:
    """Total L2 norm of the gradients (before the optimizer step)."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    # Per-tensor norms in one fused call, no concatenated copy of every gradient.
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2)


class ProgressiveGAN(LightningModule):
    """Progressive WGAN-GP with an EMA generator, 2D and 3D.

    Public interface (evaluation codes against it): ``latent_dim``, ``spatial_dims``,
    ``images_shown`` (images seen so far over all ranks, a buffer in the state_dict),
    ``sample(n, seed=None, ema=True) -> [n, C, *S]`` in [-1, 1] at the current output side,
    ``set_progress(level, alpha)`` (used by the schedule callback) and ``reset_ema()`` (used at fit
    start and by weight transfer); set by callbacks for the others: ``image_schedule`` (None
    without a ``ProgressiveSchedule``), ``ema_active``, ``transfer_summary`` (None without a
    ``WeightTransfer``).

    Args:
        generator: the noise generator (its ``resolutions`` are the levels).
        discriminator: a progressive critic whose pyramid contains every generator resolution.
        lr, betas: Adam (Karras et al. 2018: 1e-3, (0, 0.99)).
        gp_weight: lambda of WGAN-GP (10).
        drift_weight: epsilon_drift (1e-3).
        lr_mult: learning-rate multipliers by module path prefix (``{"generator.trunk": 0.25}``),
            as Adam parameter groups; the longest matching prefix wins. A property of the model,
            the same for every init strategy. The effective rates are in ``hparams.lr_effective``.
        augment: a DiffAugment policy for the critic's inputs (``"translation,cutout,contrast"``;
            ops in ``gan_init.nn.diffaugment.AUGMENTATIONS``): real and fake images in the critic
            step, the gradient penalty's inputs, and the fakes of the generator step, each batch
            with its own draw. None: off (the critic sees the images as they are).
        stress: what makes training fail more often, applied to every arm alike (issue 21 item
            4): a multiplier of the learning rate of G and D alike (both Adam optimizers, every
            parameter group, on top of ``lr_mult``); 1 is the tuned setting. Any finite > 0.
    """

    def __init__(
        self,
        generator: NoiseGenerator,
        discriminator: ProgressiveDiscriminator,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.0, 0.99),
        gp_weight: float = 10.0,
        drift_weight: float = 1e-3,
        lr_mult: dict[str, float] | None = None,
        augment: str | None = None,
        stress: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.automatic_optimization = False
        missing = [r for r in generator.resolutions if r not in discriminator.resolutions]
        if missing or generator.spatial_dims != discriminator.spatial_dims:
            raise ValueError(
                f"discriminator (spatial_dims={discriminator.spatial_dims}, resolutions "
                f"{discriminator.resolutions}) does not cover the generator (spatial_dims="
                f"{generator.spatial_dims}, resolutions {generator.resolutions}); missing {missing}"
            )
        # Outputs in fp32 under bf16 autocast (trainer.precision: bf16-mixed): the losses, the
        # critic's scores and the gradient penalty are computed in fp32.
        self.generator = fp32_outputs(generator)
        self.discriminator = fp32_outputs(discriminator)
        self.lr_mult = check_lr_mult(self, lr_mult or {})
        self.stress = check_stress(stress)
        self.augment = (
            None if augment is None else DiffAugment(augment, option="--model.init_args.augment")
        )
        # The EMA copy of G (Karras et al. 2018, sec. 4.1 / appendix A.1) is part of the
        # state_dict, so checkpoints carry it; the EMA callback updates it.
        self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
        self.register_buffer("images_shown_", torch.zeros((), dtype=torch.long))
        # Seed of the training streams: the run's seed (LightningCLI seeds before building the
        # model); a checkpoint keeps it, so a resumed run draws what the uninterrupted one drew.
        self.rng_seed = run_seed()
        # What the callbacks set at setup and fit start for one another to read (rebuilt from the
        # run's config by each fit, so no checkpoint holds them): the resolved schedule (an
        # ImageSchedule, from ProgressiveSchedule), whether generator_ema is kept up to date
        # (by the EMA callback), and what the weight transfer did (WeightTransfer's summary).
        self.image_schedule: Any = None
        self.ema_active = False
        self.transfer_summary: dict[str, Any] | None = None
        self.set_progress(generator.current_level, generator.current_alpha)

    # ---- public interface -------------------------------------------------------------------

    @property
    def hparams_initial(self) -> AttributeDict:
        """The init arguments plus ``lr_effective`` (each ``lr_mult`` part's learning rate, with
        ``stress``), as the loggers receive them. Checkpoints store ``hparams`` (init arguments
        only), which a resume passes back to ``__init__``."""
        hparams = super().hparams_initial
        lr = hparams.get("lr", self.hparams.lr) * self.stress
        hparams["lr_effective"] = {"default": lr, **{p: lr * m for p, m in self.lr_mult.items()}}
        return hparams

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    @property
    def spatial_dims(self) -> int:
        return self.generator.spatial_dims

    @property
    def images_shown(self) -> int:
        """Images shown to the discriminator so far, summed over all ranks."""
        return int(self.images_shown_)

    @images_shown.setter
    def images_shown(self, value: int) -> None:
        self.images_shown_.fill_(int(value))

    @property
    def level(self) -> int:
        return self.generator.current_level

    @property
    def alpha(self) -> float:
        return self.generator.current_alpha

    @property
    def resolution(self) -> int:
        return self.generator.resolution

    @torch.no_grad()
    def set_progress(self, level: int, alpha: float) -> None:
        """Select the generator level (and its fade-in) in G, EMA G and the matching D level."""
        self.generator.set_progress(level, alpha)
        self.generator_ema.set_progress(level, alpha)
        d_level = self.discriminator.resolutions.index(self.generator.resolution)
        self.discriminator.set_progress(d_level, self.generator.current_alpha)

    @torch.no_grad()
    def reset_ema(self) -> None:
        """Make the EMA generator an exact copy of the generator (weights and buffers)."""
        self.generator_ema.load_state_dict(self.generator.state_dict())

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, ema: bool = True) -> Tensor:
        """``n`` images ``[n, C, *S]`` in [-1, 1] at the current level (the same ``seed`` gives
        the same latents on any device)."""
        net = self.generator_ema if ema else self.generator
        rng = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.latent_dim, generator=rng).to(self.device)
        was_training = net.training
        net.eval()
        images = net(z).clamp(-1.0, 1.0)
        net.train(was_training)
        return images

    # ---- training ---------------------------------------------------------------------------

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr, betas = self.hparams.lr * self.stress, tuple(float(b) for b in self.hparams.betas)
        return [
            torch.optim.Adam(
                lr_param_groups(getattr(self, net), net, lr, self.lr_mult), betas=betas
            )
            for net in NETWORKS
        ]

    def _generator(self, purpose: str) -> torch.Generator:
        """The step's generator for one purpose: a function of (seed, images shown, rank), so
        a resumed run repeats the uninterrupted run's draws (``gan_init.core.seeding``)."""
        return step_generator(
            self.rng_seed, self.images_shown, self.global_rank, purpose, self.device
        )

    def _latents(self, n: int, purpose: str) -> Tensor:
        rng = self._generator(purpose)
        return torch.randn(n, self.latent_dim, device=self.device, generator=rng)

    def _augmented(self, images: Tensor, purpose: str) -> Tensor:
        """``images`` as the critic sees them: DiffAugment'ed from the step's stream for
        ``purpose`` when ``augment`` is set (differentiable), else unchanged."""
        if self.augment is None:
            return images
        return self.augment(images, self._generator(purpose))

    def _d_step(self, real: Tensor, opt: torch.optim.Optimizer) -> dict[str, Tensor]:
        """Critic update: ``D(fake) - D(real) + lambda * GP + eps_drift * D(real)^2``, on
        augmented real and fake images when ``augment`` is set (the penalty too: it constrains
        the critic where it is evaluated)."""
        with torch.no_grad():
            fake = self.generator(self._latents(real.shape[0], "latents_d"))
        real = self._augmented(real, "augment_real")
        fake = self._augmented(fake, "augment_fake_d")
        d_real = self.discriminator(real)
        d_fake = self.discriminator(fake)
        gp = gradient_penalty(self.discriminator, real, fake, generator=self._generator("gp"))
        drift = d_real.pow(2).mean()
        wasserstein = d_fake.mean() - d_real.mean()
        loss = wasserstein + self.hparams.gp_weight * gp + self.hparams.drift_weight * drift
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        grad_norm = _grad_norm(list(self.discriminator.parameters()))
        opt.step()
        return {"loss_d": loss, "gp": gp, "drift": drift, "grad_norm_d": grad_norm}

    def _g_step(self, batch_size: int, opt: torch.optim.Optimizer) -> dict[str, Tensor]:
        """Generator update: ``-D(T(G(z)))``, ``T`` the augmentation (identity without
        ``augment``), differentiated through."""
        self.discriminator.requires_grad_(False)
        fake = self._augmented(self.generator(self._latents(batch_size, "latents_g")), "augment_g")
        loss = -self.discriminator(fake).mean()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.discriminator.requires_grad_(True)
        grad_norm = _grad_norm(list(self.generator.parameters()))
        opt.step()
        return {"loss_g": loss, "grad_norm_g": grad_norm}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        images = batch["image"]
        real = real_at(images, self.resolution, self.alpha)
        stats = self._d_step(real, opt_d)
        stats |= self._g_step(images.shape[0], opt_g)
        self.images_shown_ += images.shape[0] * self.trainer.world_size
        for name, value in stats.items():
            self.log(f"train/{name}", value.detach(), prog_bar=name in ("loss_g", "loss_d"))
        if not is_logging_step(self):
            return  # the progress values read device buffers (a sync): only when written
        progress = {
            "images_shown": float(self.images_shown),
            "level": float(self.level),
            "alpha": self.alpha,
            "resolution": float(self.resolution),
        }
        for name, value in progress.items():
            self.log(f"progress/{name}", value, prog_bar=name == "resolution")

    # ---- checkpoints ------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_init"] = {
            "format": CHECKPOINT_FORMAT,
            "stage": "noise",
            "spatial_dims": self.spatial_dims,
            "networks": {
                "generator": self.generator.config,
                "discriminator": self.discriminator.config,
            },
        }
        checkpoint[RNG_KEY] = {"seed": self.rng_seed}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.rng_seed = int(checkpoint.get(RNG_KEY, {}).get("seed", self.rng_seed))


def load_noise_gan(path: str) -> ProgressiveGAN:
    """Rebuild a ``ProgressiveGAN`` from a checkpoint (networks from ``checkpoint["gan_init"]``,
    no pickled code: ``torch.load(weights_only=True)``), in eval mode on the CPU, at the saved
    level and alpha."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    meta = checkpoint.get("gan_init")
    if not meta or meta.get("stage") != "noise":
        raise ValueError(
            f"{path}: not a gan-init noise-GAN checkpoint (its 'gan_init' metadata is "
            f"{meta!r}; expected stage 'noise')"
        )
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format')!r} != {CHECKPOINT_FORMAT}")
    networks = meta["networks"]
    hparams = {
        k: v
        for k, v in checkpoint.get("hyper_parameters", {}).items()
        if k in ("lr", "betas", "gp_weight", "drift_weight", "lr_mult", "augment", "stress")
    }
    model = ProgressiveGAN(
        NoiseGenerator.from_config(networks["generator"]),
        ProgressiveDiscriminator.from_config(networks["discriminator"]),
        **hparams,
    )
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model.eval()
