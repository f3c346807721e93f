"""A folder of real subjects, one T1 and one T2 NIfTI file each (IXI, BraTS, or your pattern).

Preprocessing (``data_modules.preprocessing``, the chain ``gan-init translate`` uses too; once,
then cached on disk): canonical (RAS+) orientation, T2 (and the optional brain mask) resampled
onto the T1 grid, resampling to a target spacing, crop/pad to the field of view centred on the
head, percentile intensity scaling to [-1, 1], optional masking.
The cache is keyed by a hash of the file list (paths, sizes, modification times) and of every
preprocessing setting, and written to a temporary folder that is renamed into place at the end,
so an interrupted build leaves nothing that a later run could mistake for a cache.

Patterns are globs relative to the folder with one ``{subject}`` placeholder, which names the
subject and pairs T1 with T2 (``**/`` matches any sub-folders).

Data that cannot train is a ``DataError`` naming the file, what was found and the fix (or, with
``skip_bad_subjects``, a warning, and the subject is listed under ``skipped`` in the records):
an unreadable, non-3D, non-finite or constant (e.g. all-zero) volume, an empty brain mask or
foreground, and an intensity scaling that cannot work (a percentile range of zero width).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_modules.augment import Augmentation
from data_modules.base import DataError, T1T2DataModule
from data_modules.geometry import AXES, check_slice_range, to_unit
from data_modules.preprocessing import Preprocessing, preprocess
from data_modules.stream import Bank
from gan_init.core.assets import cache_dir as default_cache_root
from gan_init.core.registry import check_choice

LAYOUTS: dict[str, tuple[str, str]] = {
    # IXI: IXI012-HH-1211-T1.nii.gz / IXI012-HH-1211-T2.nii.gz, all in one folder.
    "ixi": ("{subject}-T1.nii.gz", "{subject}-T2.nii.gz"),
    # BraTS: BraTS20_Training_001/BraTS20_Training_001_t1.nii.gz (not _t1ce), in sub-folders.
    "brats": ("**/{subject}_t1.nii.gz", "**/{subject}_t2.nii.gz"),
    "custom": ("", ""),
}
# Field of view (mm) that holds the whole head (IXI) or the skull-stripped brain (BraTS).
DEFAULT_FOV_MM = {"ixi": 224.0, "brats": 192.0, "custom": 224.0}
# 2: bad volumes (constant, empty foreground, failed intensity scaling) are refused, not cached.
CACHE_VERSION = 2
ROLES = ("cyclegan", "noise")
DEFAULT_FIX = "--data.skip_bad_subjects=true (YAML: skip_bad_subjects: true)"


@dataclass(frozen=True)
class SubjectFiles:
    """The files of one subject."""

    subject: str
    t1: Path
    t2: Path
    mask: Path | None = None


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """The glob ``pattern`` as a regex over posix relative paths, capturing ``subject``."""
    out = []
    for token in re.split(r"(\{subject\}|\*\*/|\*|\?)", pattern):
        out.append(
            {
                "{subject}": r"(?P<subject>[^/]+?)",
                "**/": r"(?:.*/)?",
                "*": r"[^/]*",
                "?": r"[^/]",
            }.get(token, re.escape(token))
        )
    return re.compile("".join(out) + r"\Z")


def _match(root: Path, pattern: str, what: str) -> dict[str, list[Path]]:
    """subject -> files matching ``pattern`` under ``root``."""
    if pattern.count("{subject}") != 1:
        raise DataError(
            f"{what} pattern {pattern!r} must contain '{{subject}}' exactly once "
            "(it names the subject and pairs T1 with T2), e.g. '{subject}-T1.nii.gz'"
        )
    regex = _pattern_regex(pattern)
    found: dict[str, list[Path]] = {}
    for path in sorted(root.glob(pattern.replace("{subject}", "*"))):
        m = regex.match(path.relative_to(root).as_posix())
        if m:
            found.setdefault(m["subject"], []).append(path)
    return found


def find_subjects(
    root: str | Path,
    t1_pattern: str,
    t2_pattern: str,
    mask_pattern: str | None = None,
    skip_bad_subjects: bool = False,
    fix: str = DEFAULT_FIX,
    skipped: list[dict[str, str]] | None = None,
) -> list[SubjectFiles]:
    """Pair the T1 and T2 files under ``root`` by subject (sorted by subject).

    Raises ``DataError`` for a missing or empty folder, a pattern that matches nothing, and (or,
    with ``skip_bad_subjects``, warns and skips) a subject whose files do not pair up. ``fix``:
    how the user turns skipping on; ``skipped`` collects ``{"subject", "reason"}`` of the skipped.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (or is not a folder)")
    if not any(p.is_file() or p.is_symlink() for p in root.rglob("*")):
        raise DataError(
            f"data folder {root} is empty: expected T1/T2 NIfTI files matching "
            f"{t1_pattern!r} and {t2_pattern!r}"
        )
    matches = {}
    for what, pattern in (("T1", t1_pattern), ("T2", t2_pattern), ("mask", mask_pattern)):
        if pattern is None:
            continue
        matches[what] = _match(root, pattern, what)
        if not matches[what]:
            examples = sorted(
                p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
            )[:3]
            raise DataError(
                f"no file in {root} matches the {what} pattern {pattern!r} "
                f"(files there include {', '.join(examples)}); choose layout 'ixi' or 'brats', "
                "or give t1_pattern/t2_pattern with a '{subject}' placeholder"
            )
    subjects, problems = [], []
    for subject in sorted(set(matches["T1"]) | set(matches["T2"])):
        files = {what: found.get(subject, []) for what, found in matches.items()}
        bad = [
            f"{len(paths)} {what} files match ({', '.join(map(str, paths))}); expected one"
            for what, paths in files.items()
            if len(paths) > 1
        ]
        bad += [
            f"has {have} file {files[have][0]} but no {what} file matching "
            f"{dict(T1=t1_pattern, T2=t2_pattern, mask=mask_pattern)[what]!r}"
            for what in files
            for have in ("T1", "T2")
            if not files[what] and files[have] and have != what
        ][:1]
        if bad:
            problems.append((subject, "; ".join(bad)))
            continue
        mask = files["mask"][0] if "mask" in files else None
        subjects.append(SubjectFiles(subject, files["T1"][0], files["T2"][0], mask))
    _report(problems, skip_bad_subjects, fix, skipped)
    if not subjects:
        raise DataError(f"no complete T1/T2 subject in {root}")
    return subjects


def _report(
    problems: list[tuple[str, str]],
    skip: bool,
    fix: str,
    skipped: list[dict[str, str]] | None = None,
) -> None:
    """Stop at the first ``(subject, problem)``, or (``skip``) warn about each and record it."""
    if problems and not skip:
        subject, problem = problems[0]
        more = f" (and {len(problems) - 1} more subject(s))" if len(problems) > 1 else ""
        raise DataError(f"subject {subject!r}: {problem}{more}; fix it, or pass {fix} to skip")
    for subject, problem in problems:
        warnings.warn(f"skipping subject {subject!r}: {problem}", stacklevel=3)
        if skipped is not None:
            skipped.append({"subject": subject, "reason": problem})


def _check_split(
    val_fraction: float, test_fraction: float, roles: bool, cyclegan_fraction: float
) -> None:
    """Refuse subject-split options that cannot split (fractions, and roles without val/test)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in [0, 1)")
    if not 0 < cyclegan_fraction < 1:
        raise ValueError(f"cyclegan_fraction={cyclegan_fraction} must be in (0, 1)")
    if roles and (val_fraction <= 0 or test_fraction <= 0):
        raise ValueError(
            "roles need evaluation subjects: val_fraction and test_fraction must be > 0"
        )


class NiftiFolderDataModule(T1T2DataModule):
    """Real T1/T2 subjects from a folder of NIfTI files; 2D slices or 3D volumes.

    Batches as ``IcbmDataModule``: train mode ``cyclegan`` -> ``{"t1", "t2"}`` [B, 1, *S] from
    two independent shuffles (unpaired), mode ``noise`` -> ``{"image"}``; validation/test ->
    ``{"t1", "t2"}`` paired, unaugmented. Float32 in [-1, 1]. Subjects (not slices) are split
    into train/val/test with ``split_seed``; with ``roles``, the train subjects are split again
    into a CycleGAN role and a noise-GAN role (mode ``cyclegan`` trains on the first, ``noise``
    on the second; both evaluate on val/test). The split is recorded in ``subjects.json``.

    Args:
        root: The folder of subjects.
        layout: ``ixi``, ``brats`` (ready patterns) or ``custom`` (give both patterns).
        t1_pattern: Glob of T1 files relative to ``root`` with one ``{subject}``, e.g.
            ``"{subject}/anat/{subject}_T1w.nii.gz"``; overrides the layout's.
        t2_pattern: Same for T2.
        mask_pattern: Optional brain mask per subject: voxels outside it become -1, and the
            intensity percentiles are taken inside it.
        spatial_dims: 2 (slices) or 3 (volumes).
        size: Image side; None: 64 in 2D, 32 in 3D.
        mode: ``cyclegan`` or ``noise``.
        modality: Image of mode ``noise`` and default of ``real_images``: ``t1``/``t2``.
        batch_size: Train/validation batch size (a callback may change it between epochs).
        num_workers: DataLoader worker processes.
        seed: Seed of the train shuffles (and augmentation); None: the run's seed
            (``seed_everything``), so each seed of a sweep draws its own stream.
        spacing: Target voxel spacing in mm (isotropic); None: ``fov_mm / size``.
        fov_mm: Field of view (cube side, mm) kept around the head; None: by layout (224 mm
            for IXI heads, 192 mm for BraTS brains).
        axis: 2D only: ``axial``, ``coronal`` or ``sagittal`` slices.
        slice_range: 2D only: slices from this fraction of the head's extent along the axis.
        percentiles: Intensities at these percentiles (of the head) map to -1 and 1.
        val_fraction: Fraction of subjects for validation.
        test_fraction: Fraction of subjects for testing.
        samples_per_epoch: Train samples per epoch; None: one pass over the train items.
        augmentation: Optional random warps/intensity effects on train samples.
        cache_dir: Where preprocessed data is cached; None: ``$GAN_INIT_DATA/nifti-cache``.
        skip_bad_subjects: Warn about and skip subjects with missing/unreadable/bad files
            (constant or all-zero volumes, empty masks, failed intensity scaling) instead of
            stopping; the skipped are listed in ``subjects.json``.
        split_seed: Seed of the subject split (and roles). Fixed, not the run's seed: every run
            of a sweep (and both stages of a pipeline) sees the same subjects in the same roles.
        roles: Split the train subjects into disjoint roles, CycleGAN training and noise-GAN
            training (needs at least 4 subjects: one per role, one for val, one for test).
        cyclegan_fraction: With ``roles``: fraction of the train subjects in the CycleGAN role
            (the rest are the noise-GAN role).
        train_subjects: Train on the first N subjects of the training set (with roles: of each
            role), in the split's seeded order, so a smaller set is part of every larger one;
            validation and test subjects do not change with N. None: all.
    """

    def __init__(
        self,
        root: str,
        layout: str = "ixi",
        t1_pattern: str | None = None,
        t2_pattern: str | None = None,
        mask_pattern: str | None = None,
        spatial_dims: int = 2,
        size: int | None = None,
        mode: str = "cyclegan",
        modality: str = "t1",
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int | None = None,
        spacing: float | None = None,
        fov_mm: float | None = None,
        axis: str = "axial",
        slice_range: tuple[float, float] = (0.4, 0.75),
        percentiles: tuple[float, float] = (0.5, 99.5),
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        samples_per_epoch: int | None = None,
        augmentation: Augmentation | None = None,
        cache_dir: str | None = None,
        skip_bad_subjects: bool = False,
        split_seed: int = 0,
        roles: bool = False,
        cyclegan_fraction: float = 0.5,
        train_subjects: int | None = None,
    ) -> None:
        super().__init__(
            spatial_dims=spatial_dims,
            size=size,
            mode=mode,
            modality=modality,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            samples_per_epoch=samples_per_epoch,
            augmentation=augmentation,
            split_seed=split_seed,
        )
        if train_subjects is not None and train_subjects < 1:
            raise ValueError(f"train_subjects={train_subjects} must be at least 1 (or None: all)")
        self.train_subjects = train_subjects
        self.root = Path(root).expanduser()
        self.layout = check_choice("layout", layout, tuple(LAYOUTS))
        self.t1_pattern = t1_pattern or LAYOUTS[layout][0]
        self.t2_pattern = t2_pattern or LAYOUTS[layout][1]
        if not self.t1_pattern or not self.t2_pattern:
            raise ValueError("layout='custom' needs t1_pattern and t2_pattern")
        self.mask_pattern = mask_pattern
        fov = float(fov_mm or DEFAULT_FOV_MM[layout])
        _check_split(val_fraction, test_fraction, roles, cyclegan_fraction)
        self.prep = Preprocessing(
            spatial_dims=spatial_dims,
            size=self.size,
            spacing=float(spacing or fov / self.size),
            fov_mm=fov,
            axis=check_choice("axis", axis, AXES),
            slice_range=check_slice_range(slice_range),
            percentiles=(float(percentiles[0]), float(percentiles[1])),
        )
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.cache_root = Path(cache_dir).expanduser() if cache_dir else None
        self.skip_bad_subjects = skip_bad_subjects
        self.roles = bool(roles)
        self.cyclegan_fraction = float(cyclegan_fraction)
        self.manifest: dict = {}
        self.assignment: dict[str, list[str]] = {}
        """Subjects per split/role (``train``/``val``/``test``, or with roles ``cyclegan``/
        ``noise``/``val``/``test``), after skipping."""
        self.skipped: list[dict[str, str]] = []
        self.found: list[str] = []  # subjects with paired files (before preprocessing)
        # How the user spells an option in error messages (``gan-init data check`` sets its flags).
        self.fixes = {
            "skip_bad_subjects": DEFAULT_FIX,
            "roles": "--data.roles=false (YAML: roles: false)",
            "train_subjects": "lower --data.train_subjects (YAML: train_subjects)",
        }

    # -- cache -----------------------------------------------------------------------------

    def _cache_key(self, subjects: list[SubjectFiles]) -> tuple[str, dict]:
        def stamp(path: Path | None) -> list | None:
            if path is None:
                return None
            st = path.stat() if path.exists() else None
            return [str(path.resolve()), st.st_size if st else -1, st.st_mtime_ns if st else -1]

        payload = {
            "version": CACHE_VERSION,
            "prep": self.prep.__dict__,
            "skip_bad_subjects": self.skip_bad_subjects,
            "subjects": [[s.subject, stamp(s.t1), stamp(s.t2), stamp(s.mask)] for s in subjects],
        }
        text = json.dumps(payload, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:20], payload

    def cache_path(self) -> Path:
        """The cache folder of the current files and settings (it may not exist yet)."""
        subjects = self._subjects()
        key, _ = self._cache_key(subjects)
        return (self.cache_root or default_cache_root() / "nifti-cache") / key

    def _subjects(self, skipped: list[dict[str, str]] | None = None) -> list[SubjectFiles]:
        return find_subjects(
            self.root,
            self.t1_pattern,
            self.t2_pattern,
            self.mask_pattern,
            self.skip_bad_subjects,
            self.fixes["skip_bad_subjects"],
            skipped,
        )

    def prepare_data(self) -> None:
        """Build the cache if it is missing (Lightning runs this on one process per node)."""
        self._ensure_cache()

    def _ensure_cache(self) -> Path:
        unpaired: list[dict[str, str]] = []
        subjects = self._subjects(unpaired)
        self.found = [s.subject for s in subjects]
        key, payload = self._cache_key(subjects)
        target = (self.cache_root or default_cache_root() / "nifti-cache") / key
        if (target / "data.pt").is_file():
            manifest = json.loads((target / "manifest.json").read_text())
            for bad in manifest.get("skipped", []):  # skipped when the cache was built: say so
                warnings.warn(f"skipping subject {bad['subject']!r}: {bad['reason']}", stacklevel=2)
            self.skipped = unpaired + manifest.get("skipped", [])
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=target.parent))
        try:
            volumes, kept, problems = {}, [], []
            for files in subjects:
                try:
                    out = preprocess(files, self.prep)
                except DataError as err:
                    problems.append((files.subject, str(err)))
                    continue
                volumes[files.subject] = {k: out[k].half() for k in ("t1", "t2")}
                kept.append({"subject": files.subject, "info": out["info"]})
            skipped: list[dict[str, str]] = []
            _report(problems, self.skip_bad_subjects, self.fixes["skip_bad_subjects"], skipped)
            self.skipped = unpaired + skipped
            if not kept:
                raise DataError(f"no usable T1/T2 subject in {self.root}")
            torch.save(volumes, tmp / "data.pt")
            manifest = {**payload, "kept": kept, "skipped": skipped, "root": str(self.root)}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=list))
            try:
                os.replace(tmp, target)
            except OSError:
                # Another process (a DDP rank) finished the same cache first: keep theirs.
                if not (target / "data.pt").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    # -- banks -----------------------------------------------------------------------------

    def _split(self, names: list[str]) -> dict[str, list[str]]:
        """Subjects per split (and role), from ``split_seed`` alone: the same in every run."""
        n = len(names)
        order = [names[i] for i in np.random.default_rng(self.split_seed).permutation(n)]
        n_val, n_test = round(n * self.val_fraction), round(n * self.test_fraction)
        # Every asked-for split gets at least one subject while one is left for training.
        if self.val_fraction > 0 and n_val == 0 and n - n_test >= 2:
            n_val = 1
        if self.test_fraction > 0 and n_test == 0 and n - n_val >= 2:
            n_test = 1
        if self.roles:
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        if n - n_val - n_test < (2 if self.roles else 1):
            self._too_few(n)
        train = order[n_val + n_test :]
        # Training sets in the seeded order (truncated by ``train_subjects``); held-out sorted.
        split = {"train": train}
        if self.roles:
            n_cyclegan = min(max(round(len(train) * self.cyclegan_fraction), 1), len(train) - 1)
            split = {"cyclegan": train[:n_cyclegan], "noise": train[n_cyclegan:]}
        split |= {"val": sorted(order[:n_val]), "test": sorted(order[n_val : n_val + n_test])}
        return split

    def _training_sets(self, split: dict[str, list[str]]) -> dict[str, list[str]]:
        """The first ``train_subjects`` subjects of each training set (seeded order), sorted;
        a one-line error when the set this run trains on has fewer."""
        n = self.train_subjects
        trains_on = self.mode if self.roles else "train"
        out = dict(split)
        for name in ROLES + ("train",):
            if name not in split:
                continue
            if n is not None and name == trains_on and len(split[name]) < n:
                role = f"the {name} role" if self.roles else "the training set"
                raise DataError(
                    f"train_subjects={n} but {role} has {len(split[name])} subjects (of "
                    f"{sum(map(len, split.values()))} usable in {self.root}): add subjects, or "
                    f"{self.fixes['train_subjects']}"
                )
            out[name] = sorted(split[name][:n] if n is not None else split[name])
        return out

    def _too_few(self, n: int, after: str = "") -> None:
        if self.roles:
            raise DataError(
                f"{n} subjects{after} are too few for roles (CycleGAN training, noise training, "
                "validation, test: at least one each, 4 in all): add subjects, or turn roles "
                f"off ({self.fixes['roles']})"
            )
        raise DataError(
            f"{n} subjects{after} leave none for training with val_fraction={self.val_fraction} "
            f"and test_fraction={self.test_fraction}: add subjects, or lower the fractions"
        )

    def _build_banks(self) -> dict[str, Bank]:
        path = self._ensure_cache()
        volumes = torch.load(path / "data.pt", weights_only=True)
        self.manifest = json.loads((path / "manifest.json").read_text())
        # Split every subject found, then drop the skipped: a bad subject leaves a hole in its
        # split instead of moving every other subject to another role.
        assignment = {k: [s for s in v if s in volumes] for k, v in self._split(self.found).items()}
        if any(not names for k, names in assignment.items() if self.roles or k == "train"):
            self._too_few(len(volumes), f" (after skipping {len(self.skipped)} bad)")
        assignment = self._training_sets(assignment)
        self.assignment = assignment
        banks = {}
        for split, names in assignment.items():
            if not names:
                # An empty split (fraction 0) still yields a valid, empty bank.
                empty = torch.zeros(0, *self.image_shape)
                banks[split] = Bank(empty, empty.clone(), [])
                continue
            t1 = torch.cat([volumes[s]["t1"] for s in names])
            t2 = torch.cat([volumes[s]["t2"] for s in names])
            subjects = [s for s in names for _ in range(volumes[s]["t1"].shape[0])]
            banks[split] = Bank(to_unit(t1.float()), to_unit(t2.float()), subjects)
        if self.roles:
            self.role_banks = {role: banks.pop(role) for role in ROLES}
            banks["train"] = self.role_banks[self.mode]
        return banks

    @property
    def voxel_spacing(self) -> float:
        """Spacing (mm) of the images the networks see: the cropped cube (``grid`` voxels of
        ``spacing``) resampled to ``size``. Recorded in CycleGAN checkpoints (with
        ``intensity``), so ``gan-init translate`` preprocesses an input as this module does."""
        return self.prep.voxel_spacing

    @property
    def intensity(self) -> dict[str, Any]:
        """How :func:`preprocess` scales intensities (``tio.RescaleIntensity`` on the head)."""
        return {
            "range": [-1.0, 1.0],
            "scaling": "percentile",
            "percentiles": list(self.prep.percentiles),
            # The head: voxels above the mean (TorchIO's default mask), or the brain mask.
            "foreground": "mask" if self.mask_pattern else "above_mean",
            "clip": True,
        }

    def splits_in_use(self) -> dict[str, Bank]:
        """Every bank a run of this module touches: with roles, both roles' train subjects."""
        self._ensure_banks()
        if self.roles:
            return {**self.role_banks, "val": self._banks["val"], "test": self._banks["test"]}
        return dict(self._banks)

    def subjects_record(self) -> dict[str, Any]:
        """Which subjects went where (``subjects.json``)."""
        self._ensure_banks()
        return {
            "root": str(self.root),
            "split_seed": self.split_seed,
            "roles": self.roles,
            "fractions": {
                "val": self.val_fraction,
                "test": self.test_fraction,
                **({"cyclegan": self.cyclegan_fraction} if self.roles else {}),
            },
            "mode": self.mode,
            "trains_on": self.mode if self.roles else "train",
            "train_subjects": self.train_subjects,
            "subjects": self.assignment,
            "skipped": self.skipped,
        }

    def record(self) -> dict[str, Any]:
        return {
            **super().record(),
            "train_subjects": self.train_subjects,
            "source": self.source(),
            "subjects": self.subjects_record(),
        }

    def source(self) -> dict[str, Any]:
        """Which data this is: the folder, its layout and patterns (``data.json``)."""
        return {
            "root": str(self.root.resolve()),
            "layout": self.layout,
            "t1_pattern": self.t1_pattern,
            "t2_pattern": self.t2_pattern,
            "mask_pattern": self.mask_pattern,
        }

    def write_records(self, folder: Path) -> list[Path]:
        paths = super().write_records(folder)
        path = folder / "subjects.json"
        path.write_text(json.dumps(self.subjects_record(), indent=1) + "\n")
        return [*paths, path]
