"""What both data modules share: image banks, the seeded sample stream, and the dataloaders.

A data module holds, per split, a *bank*: T1 and T2 images ``[N, *S]`` in [0, 1] (2D slices or
3D volumes, item i of T1 and of T2 from the same subject and position). Batches are drawn from
the bank:

- train, mode ``cyclegan``: ``{"t1": [B, 1, *S], "t2": [B, 1, *S]}``, T1 and T2 unpaired (drawn
  from independent shuffles / independent random draws);
- train, mode ``noise``: ``{"image": [B, 1, *S]}`` of one modality;
- validation and test: ``{"t1", "t2"}`` paired (same subject, same slice, same warp).

All batches are float32 in [-1, 1].

Reproducibility: every sample is a pure function of (seed, split, sample id, stream). The train
stream is indexed by a global sample counter: sample id ``s`` is the s-th train sample of the run
(over all ranks and epochs), and rank r of w takes ids ``start + r, start + r + w, ...``, where
``start`` (``train_position``) counts the train samples consumed so far. Dataloader workers only
receive ids, so the stream does not depend on the number of workers or ranks. The counter is
checkpoint state (the data module's ``state_dict``), so a run resumed anywhere, also in the middle
of an epoch and with a batch size that changed, continues at the sample where it stopped.

Seeds: ``seed`` (the train stream) follows the run's seed (``seed_everything``) unless given;
``split_seed`` (which images are validation/test, and their draws) is fixed, so every run of a
sweep is evaluated on the same images. The resolved values are recorded (``record()``, the
checkpoint's ``datamodule_hyper_parameters`` and ``data.json`` in the trainer's log dir).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from data_modules.augment import Augmentation
from gan_init.core.registry import check_choice
from gan_init.core.seeding import run_seed_and_source

# Orientation lives with the pictures; re-exported for the data modules, which cut slices upright.
from gan_init.core.visualize import AXIS_INDEX, upright  # noqa: F401
from gan_init.runs import DATA as DATA_RECORD

MODES = ("cyclegan", "noise")
MODALITIES = ("t1", "t2")
SPLITS = ("train", "val", "test")
AXES = ("axial", "coronal", "sagittal")
# Volumes are kept in RAS+ voxel order; AXIS_INDEX (gan_init.core.visualize) names each plane's axis.
DEFAULT_SIZE = {2: 64, 3: 32}
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_STREAM_CODE = {"pair": 0, "t1": 1, "t2": 2, "subject": 3}


class DataError(ValueError):
    """The data on disk is not what the data module needs (the message names file and fix)."""


def image_shape_for(spatial_dims: int, size: int | None) -> tuple[int, ...]:
    """``(size,) * spatial_dims``, with the default size (64 in 2D, 32 in 3D) for None."""
    if spatial_dims not in DEFAULT_SIZE:
        raise ValueError(f"spatial_dims={spatial_dims!r} must be 2 or 3")
    size = DEFAULT_SIZE[spatial_dims] if size is None else int(size)
    if size < 4:
        raise ValueError(f"size={size} is too small (at least 4)")
    return (size,) * spatial_dims


def check_slice_range(slice_range: tuple[float, float]) -> tuple[float, float]:
    """``slice_range`` (fractions of an extent, low and high) as floats, checked."""
    lo, hi = slice_range
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"slice_range={slice_range!r} must satisfy 0 <= low <= high <= 1")
    return float(lo), float(hi)


def mask_extent(mask: np.ndarray | torch.Tensor, axis: int) -> tuple[int, int]:
    """First and last index along ``axis`` where the 3D boolean ``mask`` has any voxel (the
    whole axis when it has none)."""
    others = tuple(a for a in range(3) if a != axis)
    hit = np.flatnonzero(np.asarray(mask).any(axis=others))
    return (int(hit[0]), int(hit[-1])) if len(hit) else (0, mask.shape[axis] - 1)


def slab_bounds(
    mask: np.ndarray | torch.Tensor, axis: int, slice_range: tuple[float, float]
) -> tuple[int, int]:
    """First and last slice (inclusive) along ``axis`` of the 2D slab: the fraction
    ``slice_range`` of the extent of ``mask`` (head or brain) along that axis."""
    lo, hi = mask_extent(mask, axis)
    first = lo + round(slice_range[0] * (hi - lo))
    last = max(lo + round(slice_range[1] * (hi - lo)), first)
    return first, last


def upright_slices(slab: torch.Tensor, size: int, **resize: Any) -> torch.Tensor:
    """Slices ``[N, u, v]`` in RAS+ plane order -> ``[N, size, size]`` in display order: resized
    (``F.interpolate(..., **resize)``) when not already ``size``, then turned upright."""
    if tuple(slab.shape[1:]) != (size, size):
        slab = F.interpolate(slab[:, None], (size, size), **resize)[:, 0]
    return upright(slab).contiguous()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1) / 2


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (float32)."""
    return (x * 2 - 1).float()


def sample_seed(seed: int, split: str, sample_id: int, stream: str) -> int:
    """A 63-bit seed for one sample, distinct for every (seed, split, sample id, stream)."""
    words = [seed & 0xFFFFFFFF, _SPLIT_CODE[split], sample_id, _STREAM_CODE[stream]]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generator_seed(seed: int, split: str) -> int:
    """The seed a sample's ``torch.Generator`` starts from, held out by split by construction.

    Torch's CPU generator (mt19937) keeps only the low 32 bits of a seed, so two 64-bit seeds
    that agree there draw the same warp. The seed is folded to 32 bits and its two lowest bits
    are the split code (train 0, val 1, test 2): no train draw can start the stream of a
    validation or test draw, and validation and test never share one, whatever the hash gives.
    """
    folded = (seed ^ (seed >> 32)) & 0xFFFFFFFF
    return (folded & ~0b11) | _SPLIT_CODE[split]


def resolve_seed(seed: int | None) -> tuple[int, str]:
    """``(seed, where it came from)``: an explicit seed; else the run's seed
    (``gan_init.core.seeding.run_seed``: ``PL_GLOBAL_SEED``, which ``seed_everything`` sets, else
    ``torch.initial_seed()``)."""
    if seed is not None:
        return int(seed), "data seed"
    return run_seed_and_source()


@dataclass
class Bank:
    """T1 and T2 images of one split, ``[N, *S]`` each, float32 in [0, 1], item i paired."""

    t1: torch.Tensor
    t2: torch.Tensor
    subjects: list[str]
    """Subject of each item (length N)."""

    def __len__(self) -> int:
        return self.t1.shape[0]


def draw(
    bank: Bank,
    item: int | None,
    modalities: tuple[str, ...],
    seed: int,
    augmentation: Augmentation | None,
    split: str = "train",
) -> dict[str, torch.Tensor]:
    """One sample: ``{modality: [1, *S]}`` in [-1, 1], all modalities with the same warp.

    ``item=None`` picks the item at random from the sample's own generator (the ICBM stream).
    The generator starts from ``generator_seed(seed, split)``: the split's own seeds.
    """
    generator = torch.Generator().manual_seed(generator_seed(seed, split))
    if item is None:
        item = int(torch.randint(len(bank), (), generator=generator))
    x = torch.stack([getattr(bank, m)[item] for m in modalities])[None]  # [1, C, *S]
    if augmentation is not None:
        x = augmentation(x, generator)
    return {m: to_signed(x[0, c : c + 1]) for c, m in enumerate(modalities)}


@dataclass
class StreamPosition:
    """Train samples consumed so far over all ranks: the id of the next train sample."""

    samples: int = 0


class StreamSampler(DistributedSampler):
    """Train indices ``(sample_id, t1_item, t2_item)`` for one epoch on this rank.

    An epoch is ``length`` samples (over all ranks) from ``position.samples`` on, read when the
    epoch's iteration starts: rank r of w takes ids ``start + r, start + r + w, ...``. A
    ``DistributedSampler`` so Lightning keeps it under DDP; the epoch number it sets plays no
    part (the position does). ``t1_item``/``t2_item`` walk two independent seeded permutations
    of the bank, one per pass (pass k covers ids ``k * num_items ...``; the unpaired draw); with
    ``num_items=None`` (an endless stream) they are -1.
    """

    def __init__(
        self,
        length: int,
        num_items: int | None,
        seed: int,
        position: StreamPosition | None = None,
    ) -> None:
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        rank = dist.get_rank() if world > 1 else 0
        super().__init__(range(length), num_replicas=world, rank=rank, shuffle=False, seed=seed)
        self.length = length
        self.num_items = num_items
        self.per_rank = math.ceil(length / world)
        self.position = StreamPosition() if position is None else position
        self._walks: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        start = int(self.position.samples)
        total = self.per_rank * self.num_replicas
        ids = range(start + self.rank, start + total, self.num_replicas)
        if self.num_items is None:
            return iter([(s, -1, -1) for s in ids])
        return iter([(s, self.item(s, 1), self.item(s, 2)) for s in ids])

    def item(self, sample_id: int, stream: int) -> int:
        """Bank item of ``sample_id`` in stream 1 (T1) or 2 (T2)."""
        walk, index = divmod(sample_id, self.num_items)
        return int(self._permutation(walk, stream)[index])

    def _permutation(self, walk: int, stream: int) -> np.ndarray:
        if (walk, stream) not in self._walks:
            rng = np.random.default_rng([self.seed & 0xFFFFFFFF, walk, stream])
            self._walks[walk, stream] = rng.permutation(self.num_items)
        return self._walks[walk, stream]


class StreamLoader(DataLoader):
    """The train ``DataLoader``, resumable in Lightning's sense (``state_dict``/
    ``load_state_dict``): its state is the stream position, so Lightning restores it on a
    mid-epoch resume (the data module's own state restores it on any resume)."""

    def __init__(self, *args: Any, position: StreamPosition, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position = position

    def state_dict(self) -> dict[str, int]:
        return {"samples": int(self.position.samples)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.position.samples = int(state_dict["samples"])


class TrainDataset(Dataset):
    """Indexed by ``(sample_id, t1_item, t2_item)`` from ``StreamSampler``."""

    def __init__(
        self,
        bank: Bank,
        mode: str,
        modality: str,
        seed: int,
        augmentation: Augmentation | None,
        random_items: bool,
        subject_seeds: list[int] | None = None,
    ) -> None:
        self.bank, self.mode, self.modality = bank, mode, modality
        self.seed, self.augmentation, self.random_items = seed, augmentation, random_items
        self.subject_seeds = subject_seeds

    def __len__(self) -> int:
        return len(self.bank)

    def image(self, sample_id: int, item: int, modality: str) -> torch.Tensor:
        """One unpaired train image [1, *S]; the same for a given (seed, sample id, modality)."""
        seed = sample_seed(self.seed, "train", sample_id, modality)
        if self.subject_seeds is not None:
            subject, item = self.subject_and_item(seed)
            seed = self.subject_seeds[subject]
        elif self.random_items:
            item = None
        return draw(self.bank, item, (modality,), seed, self.augmentation)[modality]

    def subject_and_item(self, seed: int) -> tuple[int, int]:
        """A fixed-subject sample (``train_subjects``): which subject and which bank item (2D: slice
        position), drawn from the sample's own seed; the subject's seed then makes the image."""
        generator = torch.Generator().manual_seed(generator_seed(seed, "train"))
        subject = int(torch.randint(len(self.subject_seeds), (), generator=generator))
        return subject, int(torch.randint(len(self.bank), (), generator=generator))

    def __getitem__(self, index: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        sample_id, t1_item, t2_item = index
        if self.mode == "noise":
            item = t1_item if self.modality == "t1" else t2_item
            return {"image": self.image(sample_id, item, self.modality)}
        return {
            "t1": self.image(sample_id, t1_item, "t1"),
            "t2": self.image(sample_id, t2_item, "t2"),
        }


class PairDataset(Dataset):
    """Paired ``{"t1", "t2"}`` samples for validation/test: item k of the bank, or (with
    ``length`` set, the ICBM stream) ``length`` random draws from fixed per-split seeds."""

    def __init__(
        self,
        bank: Bank,
        split: str,
        seed: int,
        augmentation: Augmentation | None,
        length: int | None = None,
    ) -> None:
        self.bank, self.split, self.seed = bank, split, seed
        self.augmentation, self.length = augmentation, length

    def __len__(self) -> int:
        return len(self.bank) if self.length is None else self.length

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        item = None if self.length is not None else k
        seed = sample_seed(self.seed, self.split, k, "pair")
        return draw(self.bank, item, MODALITIES, seed, self.augmentation, self.split)


class T1T2DataModule(pl.LightningDataModule):
    """Dataloaders, shapes and reference images over per-split banks.

    Subclasses set ``self._banks`` (split -> Bank) in ``_build_banks()``, and decide whether the
    train stream is endless (random items, ``samples_per_epoch`` long) or walks the bank.
    """

    endless: bool = False
    eval_samples: int | None = None

    def __init__(
        self,
        spatial_dims: int,
        size: int | None,
        mode: str,
        modality: str,
        batch_size: int,
        num_workers: int,
        seed: int | None,
        samples_per_epoch: int | None,
        augmentation: Augmentation | None,
        split_seed: int = 0,
        train_subjects: int | None = None,
    ) -> None:
        super().__init__()
        if train_subjects is not None and int(train_subjects) < 1:
            raise ValueError(
                f"train_subjects={train_subjects}: expected a number of subjects of at least 1, "
                "or null for the endless stream (--data.train_subjects 16)"
            )
        self.train_subjects = None if train_subjects is None else int(train_subjects)
        self.image_shape = image_shape_for(spatial_dims, size)
        self.spatial_dims = spatial_dims
        self.size = self.image_shape[0]
        self.channels = 1
        self.mode = check_choice("mode", mode, MODES)
        self.modality = check_choice("modality", modality, MODALITIES)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        # Read by train_dataloader() on every call: a progressive-growing callback changes it
        # between epochs (with reload_dataloaders_every_n_epochs=1).
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed  # None: the run's seed, resolved on first use (see ``seed``)
        self.split_seed = int(split_seed)
        self.samples_per_epoch = samples_per_epoch
        self.augmentation = augmentation
        self._banks: dict[str, Bank] = {}
        self._reference: dict[tuple[int, str, str], torch.Tensor] = {}
        # Train samples consumed so far (all ranks): where the train stream continues.
        self.train_position = StreamPosition()

    @property
    def seed(self) -> int:
        """Seed of the train stream: the one given, else the run's seed (``run_seed``:
        ``PL_GLOBAL_SEED``, set by ``seed_everything`` before the data module is built); fixed on
        first use."""
        if self._seed is None:
            self._seed, self.seed_source = resolve_seed(self.requested_seed)
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        self.requested_seed = value
        self._seed: int | None = None
        self.seed_source = ""

    def setup(self, stage: str | None = None) -> None:
        """Build the banks; under a trainer (every rank calls this) record them (``record()``)
        in the checkpoint's ``datamodule_hyper_parameters`` and in ``data.json``."""
        self._ensure_banks()
        self.hparams.update(self.record())
        trainer = self.trainer
        if trainer is not None:
            log_dir = trainer.log_dir  # a collective call: every rank asks
            if trainer.is_global_zero:
                self.write_records(Path(log_dir or trainer.default_root_dir))

    def _ensure_banks(self) -> None:
        if not self._banks:
            self._banks = self._build_banks()

    def record(self) -> dict[str, Any]:
        """What this run's data is (plain JSON types): seeds, sizes, per-split counts."""
        return {
            "data_class": f"{type(self).__module__.split('.')[0]}.{type(self).__name__}",
            "seed": self.seed,
            "seed_source": self.seed_source,
            "split_seed": self.split_seed,
            "spatial_dims": self.spatial_dims,
            "image_shape": list(self.image_shape),
            "mode": self.mode,
            "modality": self.modality,
            "splits": {k: {"items": len(b)} for k, b in self._banks.items()},
            "train_subjects": self.train_subjects,
        }

    def write_records(self, folder: Path) -> list[Path]:
        """Write ``data.json`` (``record()``) into ``folder``; subclasses add their own files."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / DATA_RECORD
        path.write_text(json.dumps(self.record(), indent=1) + "\n")
        return [path]

    def splits_in_use(self) -> dict[str, Bank]:
        """Every bank a run of this module touches, by name (``gan-init data check`` checks each)."""
        return {split: self.bank(split) for split in SPLITS}

    def bank(self, split: str) -> Bank:
        """The images of one split (built on first use)."""
        check_choice("split", split, SPLITS)
        self._ensure_banks()
        return self._banks[split]

    def _epoch_length(self) -> int:
        if self.samples_per_epoch is not None:
            return int(self.samples_per_epoch)
        return len(self.bank("train"))

    def subject_seeds(self) -> list[int] | None:
        """The endless stream's ``train_subjects`` fixed subjects: one warp + intensity draw each,
        from the split seed (the same subjects for every run seed and both stages); None: every
        sample is a new subject. Folder data selects its subjects in its own banks instead."""
        if not self.endless or self.train_subjects is None:
            return None
        return [
            sample_seed(self.split_seed, "train", j, "subject") for j in range(self.train_subjects)
        ]

    def train_dataset(self) -> TrainDataset:
        return TrainDataset(
            self.bank("train"),
            self.mode,
            self.modality,
            self.seed,
            self.augmentation,
            random_items=self.endless,
            subject_seeds=self.subject_seeds(),
        )

    def train_dataloader(self) -> DataLoader:
        length = self._epoch_length()
        num_items = None if self.endless else len(self.bank("train"))
        sampler = StreamSampler(length, num_items, self.seed, self.train_position)
        return StreamLoader(
            self.train_dataset(),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            # Full batches only: minibatch statistics (mbstd, norms) see a constant batch size.
            drop_last=len(sampler) >= self.batch_size,
            persistent_workers=False,
            position=self.train_position,
        )

    # ---- the stream position: counted per train batch consumed, kept in checkpoints

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Called in the main process for each batch the training loop takes (not for batches
        # the loader prefetched), so the count is exact at any checkpoint.
        trainer = self.trainer
        if trainer is not None and trainer.training and isinstance(batch, dict):
            size = len(next(iter(batch.values())))
            self.train_position.samples += size * trainer.world_size
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"train_samples": int(self.train_position.samples)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_position.samples = int(state_dict.get("train_samples", 0))

    def pair_dataset(self, split: str) -> PairDataset:
        """Paired samples of ``val``/``test``: warped random draws (endless stream, ``eval_samples``
        long) or the split's own items, unaugmented, in order."""
        bank = self.bank(split)
        if self.endless:
            return PairDataset(bank, split, self.split_seed, self.augmentation, self.eval_samples)
        return PairDataset(bank, split, self.split_seed, None)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.pair_dataset(split),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def real_images(self, n: int, split: str = "val", modality: str | None = None) -> torch.Tensor:
        """A fixed, reproducible set of ``n`` real images ``[n, 1, *S]`` in [-1, 1].

        ``val``/``test``: the first n paired validation/test samples (the fixed reference set);
        ``train``: the first n images of the training stream (for memorization checks).
        """
        check_choice("split", split, SPLITS)
        modality = check_choice("modality", modality or self.modality, MODALITIES)
        key = (n, split, modality)
        if key not in self._reference:
            self._reference = {key: self._real_images(n, split, modality)}
        return self._reference[key].clone()

    def _real_images(self, n: int, split: str, modality: str) -> torch.Tensor:
        if split == "train":
            data = self.train_dataset()
            subjects = data.subject_seeds
            if subjects is not None:
                # The fixed training images, every (subject, item) pair once in a seeded order.
                pairs = [(j, i) for j in range(len(subjects)) for i in range(len(data.bank))]
                order = self._item_order("train", n, count=len(pairs))
                picks = [pairs[k] for k in order]
                return torch.stack(
                    [draw(data.bank, i, (modality,), subjects[j], data.augmentation)[modality]
                     for j, i in picks]
                )  # fmt: skip
            if self.endless:
                return torch.stack([data.image(k, -1, modality) for k in range(n)])
            # A walk of the real training items, in a seeded order, without augmentation.
            items = self._item_order("train", n)
            return torch.stack([to_signed(getattr(data.bank, modality)[i][None]) for i in items])
        data = self.pair_dataset(split)
        if self.endless:
            return torch.stack([data[k][modality] for k in range(n)])
        return torch.stack([data[int(i)][modality] for i in self._item_order(split, n)])

    def _item_order(self, split: str, n: int, count: int | None = None) -> np.ndarray:
        count = len(self.bank(split)) if count is None else count
        if n > count:
            warnings.warn(
                f"real_images: asked for {n} {split} images but the {split} split has {count}; "
                "repeating them",
                stacklevel=3,
            )
        seed = self.seed if split == "train" else self.split_seed
        rng = np.random.default_rng([seed & 0xFFFFFFFF, _SPLIT_CODE[split]])
        return np.resize(rng.permutation(count), n)
