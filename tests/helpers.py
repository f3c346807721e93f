"""The test builders under their old import path: each now lives in one module of
``tests/builders/`` (by what it builds); the shared fixtures are in ``tests/conftest.py``.
Import from ``tests.builders.<module>`` in new tests."""

from tests.builders.checkpoints import save_cyclegan, save_noise_gan, write_checkpoint
from tests.builders.configs import noise_config, tiny_noise_gan_config
from tests.builders.fakes import FakeData, FakeGAN
from tests.builders.images import BlobData, Blobs, PhantomDataModule, PhantomPairs, phantom
from tests.builders.networks import (
    PROGAN,
    SIZE,
    random_cyclegan,
    tiny_cyclegan,
    tiny_noise_gan,
    tiny_progan,
    tiny_spec,
)
from tests.builders.nifti import (
    GRID,
    HEAD_CENTRE_MM,
    HEAD_RADII_MM,
    NIFTI_SHAPE,
    brats_folder,
    head_volumes,
    ixi_folder,
    save_nifti,
    write_head,
    write_nifti,
)
from tests.builders.processes import (
    FAKE_RUN,
    REPO,
    fake_sweep_file,
    subprocess_env,
    wait_for,
)
from tests.builders.reference_cyclegan import (
    NLayerDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    reference_generator,
)
from tests.builders.trainer import cpu_trainer

__all__ = [
    "FAKE_RUN", "GRID", "HEAD_CENTRE_MM", "HEAD_RADII_MM", "NIFTI_SHAPE", "PROGAN", "REPO", "SIZE",
    "BlobData", "Blobs", "FakeData", "FakeGAN", "NLayerDiscriminator", "PhantomDataModule",
    "PhantomPairs", "ResnetBlock", "ResnetGenerator", "brats_folder", "cpu_trainer",
    "fake_sweep_file", "head_volumes", "ixi_folder", "noise_config", "phantom", "random_cyclegan",
    "reference_generator", "save_cyclegan", "save_nifti", "save_noise_gan", "subprocess_env",
    "tiny_cyclegan", "tiny_noise_gan", "tiny_noise_gan_config", "tiny_progan", "tiny_spec",
    "wait_for", "write_checkpoint", "write_head", "write_nifti",
]  # fmt: skip
