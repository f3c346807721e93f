"""The CycleGAN a noise GAN starts from: :class:`TransferSource` loads its networks from a
checkpoint on demand, :func:`untrained_generator` builds a never-trained one with the same knobs
(the ``cyclegan_untrained`` control). Strategies read a source; the transfer applies their plans;
both import this module, neither imports the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gan_init.networks.backbones import BackboneSpec
from gan_init.networks.cyclegan import CycleGANGenerator, PatchGANDiscriminator
from gan_init.nn.layers import init_weights
from gan_init.transfer.checkpoints import METADATA_KEY, is_project_checkpoint, safe_load
from gan_init.transfer.load import load_cyclegan_discriminator, load_cyclegan_generator


def untrained_generator(
    spec: BackboneSpec, seed: int, scheme: str = "normal", std: float = 0.02
) -> CycleGANGenerator:
    """A CycleGAN generator with ``spec``'s knobs, initialized as the CycleGAN recipe does
    (N(0, ``std``), Zhu et al. 2017) from ``seed`` alone, so every rank builds the same one."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = CycleGANGenerator(spec)
        init_weights(generator, scheme, std)
    return generator.eval()


class TransferSource:
    """The CycleGAN a noise GAN starts from, loaded on demand (each network once).

    Args:
        path: a gan-init CycleGAN checkpoint, or a canonical PyTorch CycleGAN generator file
            (``latest_net_G_B.pth``: it is the generator whatever direction is asked for).
        spatial_dims: the noise GAN's; a network of other dimensionality is an error.
        discriminator_path: where the T1 discriminator is when ``path`` holds none (a canonical
            ``latest_net_D_B.pth``); default: ``path``.
    """

    def __init__(
        self, path: str | Path, spatial_dims: int, discriminator_path: str | Path | None = None
    ) -> None:
        self.path = Path(path)
        self.discriminator_path = Path(discriminator_path) if discriminator_path else self.path
        self.spatial_dims = spatial_dims
        self._generators: dict[str, CycleGANGenerator] = {}
        self._discriminators: dict[str, PatchGANDiscriminator] = {}
        self._hparams: dict[str, Any] | None = None

    def generator(self, direction: str = "t2_to_t1") -> CycleGANGenerator:
        if direction not in self._generators:
            self._generators[direction] = load_cyclegan_generator(
                self.path, direction, spatial_dims=self.spatial_dims
            )
        return self._generators[direction]

    def discriminator(self, domain: str = "t1") -> PatchGANDiscriminator:
        if domain not in self._discriminators:
            self._discriminators[domain] = load_cyclegan_discriminator(
                self.discriminator_path, domain, spatial_dims=self.spatial_dims
            )
        return self._discriminators[domain]

    @property
    def spec(self) -> BackboneSpec:
        """The source's backbone knobs (those of its T2 -> T1 generator)."""
        return self.generator("t2_to_t1").spec

    def hparams(self) -> dict[str, Any]:
        """The CycleGAN's hyperparameters (empty for a canonical file)."""
        if self._hparams is None:
            obj = safe_load(self.path)
            self._hparams = (
                dict(obj.get("hyper_parameters", {})) if is_project_checkpoint(obj) else {}
            )
        return self._hparams

    def trained_at(self) -> tuple[list[int] | None, float | None]:
        """``(image_shape, voxel_spacing)`` the CycleGAN was trained at, each None when the file
        does not say (a canonical file, or a checkpoint from data that records no spacing)."""
        obj = safe_load(self.path)
        data = obj[METADATA_KEY].get("data", {}) if is_project_checkpoint(obj) else {}
        shape = data.get("image_shape")
        spacing = data.get("voxel_spacing")
        return (
            None if shape is None else [int(n) for n in shape],
            None if spacing is None else float(spacing),
        )

    def untrained_generator(self, seed: int) -> CycleGANGenerator:
        """A never-trained generator with the source's knobs and init recipe."""
        hp = self.hparams()
        scheme = hp.get("init", "normal")
        scheme = "normal" if scheme == "none" else scheme
        return untrained_generator(self.spec, seed, scheme, float(hp.get("init_std", 0.02)))
