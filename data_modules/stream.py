"""The seeded sample stream: image banks, per-sample seeds, the train sampler and the datasets.

A *bank* holds the T1 and T2 images of one split, ``[N, *S]`` in [0, 1] (item i of T1 and of T2
from the same subject and position). ``draw`` makes one sample of a bank (a seeded item and
augmentation), ``TrainDataset`` the unpaired train samples, ``PairDataset`` the paired
validation/test samples.

Reproducibility: every sample is a pure function of (seed, split, sample id, stream). The train
stream is indexed by a global sample counter: sample id ``s`` is the s-th train sample of the run
(over all ranks and epochs), and rank r of w takes ids ``start + r, start + r + w, ...``, where
``start`` (``StreamPosition``) counts the train samples consumed so far. Dataloader workers only
receive ids, so the stream does not depend on the number of workers or ranks. The counter is
checkpoint state (the data module's ``state_dict``), so a run resumed anywhere, also in the middle
of an epoch and with a batch size that changed, continues at the sample where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from data_modules.augment import Augmentation
from data_modules.geometry import to_signed
from gan_init.core.seeding import run_seed_and_source

MODALITIES = ("t1", "t2")
SPLITS = ("train", "val", "test")
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_STREAM_CODE = {"pair": 0, "t1": 1, "t2": 2, "subject": 3}


def sample_seed(seed: int, split: str, sample_id: int, stream: str) -> int:
    """A 63-bit seed for one sample, distinct for every (seed, split, sample id, stream)."""
    words = [seed & 0xFFFFFFFF, SPLIT_CODE[split], sample_id, _STREAM_CODE[stream]]
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
    return (folded & ~0b11) | SPLIT_CODE[split]


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
