"""Features of images already measured are looked up, not recomputed.

``CachedFeatures`` wraps a feature extractor (``gan_init.metrics.features``). Every image is
keyed by a digest of its pixels (and shape) together with the extractor's ``fingerprint``
(which network, which weights, slices, precision), so a key is the data settings, the set size
and the feature settings all at once: a changed data setting changes the images, a changed
network or slice setting changes the fingerprint, and either misses.

- In memory, per image: within a run the noise floor, the final metrics and the memorization
  metric see the same real images (and the same samples) several times; each is measured once.
- On disk, per set (``persist=True``, for the fixed real sets): ``<directory>/<key>.pt``, so a
  resumed run, another seed of a sweep on the same data and ``gan-init evaluate`` reuse them.
  Written whole or not at all (temporary file, then rename), so runs can share the folder.
  Extractors without a ``fingerprint`` (a module passed in by the caller) are cached in memory
  only: their weights are not known to be fixed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from gan_init.core.files import ordinary_mode

# Bump when the stored layout or what a key covers changes: old files are then never read.
CACHE_VERSION = 1


def feature_fingerprint(extractor: nn.Module) -> str | None:
    """What identifies an extractor's output (its ``fingerprint`` attribute), or None."""
    fingerprint = getattr(extractor, "fingerprint", None)
    return str(fingerprint) if fingerprint else None


def image_digest(image: Tensor, salt: str) -> str:
    """Digest of one image ``[C, *S]`` (float32 pixels and shape) under ``salt``."""
    pixels = image.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(f"{salt}|{tuple(pixels.shape)}|".encode())
    h.update(pixels.numpy().tobytes())
    return h.hexdigest()


class CachedFeatures(nn.Module):
    """``extractor`` with a per-image feature cache: ``[N, C, *S] -> [N, F]``, as the extractor.

    ``directory``: where ``persist=True`` sets are stored (None: memory only). ``computed``
    counts the images the extractor actually ran on.
    """

    def __init__(self, extractor: nn.Module, directory: str | Path | None = None) -> None:
        super().__init__()
        self.extractor = extractor
        self.num_features = int(extractor.num_features)
        self.fingerprint = feature_fingerprint(extractor)
        self.salt = f"v{CACHE_VERSION}|{self.fingerprint or f'module@{id(extractor)}'}"
        self.directory = Path(directory) if directory is not None and self.fingerprint else None
        self.memory: dict[str, Tensor] = {}
        self.computed = 0

    def _lookup(self, images: Tensor, persist: bool) -> tuple[list[str], list[int], Path | None]:
        """Digests, indices not cached (after reading the set's file), the set's file."""
        digests = [image_digest(image, self.salt) for image in images]
        missing = [i for i, d in enumerate(digests) if d not in self.memory]
        file = None
        if persist and self.directory is not None:
            whole = hashlib.sha256("".join(digests).encode()).hexdigest()[:40]
            file = self.directory / f"{whole}.pt"
            if missing and file.is_file():
                self._load(file)
                missing = [i for i, d in enumerate(digests) if d not in self.memory]
        return digests, missing, file

    def count_missing(self, images: Tensor, persist: bool = False) -> int:
        """How many of ``images`` the extractor would run on (for a time estimate)."""
        return len(self._lookup(images, persist)[1])

    def forward(self, images: Tensor, persist: bool = False) -> Tensor:
        digests, missing, file = self._lookup(images, persist)
        if missing:
            feats = self.extractor(images[missing]).detach().float().cpu()
            self.memory.update((digests[i], f) for i, f in zip(missing, feats))
            self.computed += len(missing)
        out = torch.stack([self.memory[d] for d in digests])
        if file is not None and (missing or not file.is_file()):
            self._save(file, digests, out)
        return out.to(images.device)

    def _load(self, file: Path) -> None:
        try:
            stored = torch.load(file, map_location="cpu", weights_only=True)
            self.memory.update(zip(stored["digests"], stored["features"]))
        except (OSError, RuntimeError, KeyError, TypeError, ValueError):
            pass  # a damaged or foreign file: recompute (and overwrite it)

    def _save(self, file: Path, digests: list[str], features: Tensor) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
        os.close(fd)
        try:
            torch.save({"digests": digests, "features": features.clone()}, tmp)
            ordinary_mode(tmp)  # a cache other users of the data may share
            os.replace(tmp, file)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
