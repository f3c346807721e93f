"""The base data module: per-split banks served as batches, with seeds recorded.

A data module holds, per split, a bank (``data_modules.stream.Bank``: T1 and T2 images
``[N, *S]`` in [0, 1], 2D slices or 3D volumes, item i of T1 and of T2 from the same subject and
position). Batches are drawn from the bank:

- train, mode ``cyclegan``: ``{"t1": [B, 1, *S], "t2": [B, 1, *S]}``, T1 and T2 unpaired (drawn
  from independent shuffles / independent random draws);
- train, mode ``noise``: ``{"image": [B, 1, *S]}`` of one modality;
- validation and test: ``{"t1", "t2"}`` paired (same subject, same slice, same warp).

All batches are float32 in [-1, 1]. The train stream (``data_modules.stream``) continues from
``train_position``, the count of train samples consumed so far, kept in the checkpoint.

Seeds: ``seed`` (the train stream) follows the run's seed (``seed_everything``) unless given;
``split_seed`` (which images are validation/test, and their draws) is fixed, so every run of a
sweep is evaluated on the same images. The resolved values are recorded (``record()``, the
checkpoint's ``datamodule_hyper_parameters`` and ``data.json`` in the trainer's log dir).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from data_modules.augment import Augmentation
from data_modules.geometry import image_shape_for, to_signed
from data_modules.stream import (
    MODALITIES,
    SPLIT_CODE,
    SPLITS,
    Bank,
    PairDataset,
    StreamLoader,
    StreamPosition,
    StreamSampler,
    TrainDataset,
    draw,
    resolve_seed,
    sample_seed,
)
from gan_init.core.registry import check_choice
from gan_init.runs import DATA as DATA_RECORD

MODES = ("cyclegan", "noise")


class DataError(ValueError):
    """The data on disk is not what the data module needs (the message names file and fix)."""


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
        rng = np.random.default_rng([seed & 0xFFFFFFFF, SPLIT_CODE[split]])
        return np.resize(rng.permutation(count), n)
