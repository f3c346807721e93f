"""Every error a user can meet, as the table "Errors you may meet" of ``docs/cli.md`` shows it.

Each entry is a command as the user types it (file names relative to the working directory), the
start of the one line it prints, the fix, and the exit status (2). ``tests/test_error_catalog.py``
makes the files each command needs, runs it through ``gan_init.cli.main`` and checks that the
message is what the command really prints; it also checks that the table in ``docs/cli.md`` is this one::

    python -m gan_init.cli.error_catalog   # prints the Markdown table
"""

from __future__ import annotations

from dataclasses import dataclass

NOISE_2D = "experiments/configs/noise_2d.yaml"


@dataclass(frozen=True)
class UserErrorCase:
    """One user error: ``command`` (what was typed), ``input`` (what is wrong with it),
    ``message`` (the start of the printed line), ``fix`` and the exit status."""

    name: str
    command: str
    input: str
    message: str
    fix: str
    exit: int = 2


CATALOG: tuple[UserErrorCase, ...] = (
    UserErrorCase(
        "unknown-command",
        "gan-init fti",
        "a misspelt command",
        "gan-init: command='fti' is not one of 'fit', 'validate', 'test'",
        "the suggested command (`gan-init fit ...`); `gan-init --help` lists them",
    ),
    UserErrorCase(
        "fit-unknown-key",
        f"gan-init fit --config {NOISE_2D} --model.init_args.lrr=3",
        "a key the model does not take",
        "gan-init fit: error: --model: Problem with given class_path "
        "'gan_init.models.ProgressiveGAN': Option 'lrr' is not accepted",
        "spell the key as the config does (`gan-init fit --config CONFIG --print_config`)",
    ),
    UserErrorCase(
        "fit-bad-strategy",
        f"gan-init fit --config {NOISE_2D} --init_strategy cyclgan",
        "an unknown init strategy",
        "gan-init fit: error: --init_strategy: unknown init strategy 'cyclgan'; "
        "did you mean 'cyclegan'",
        "one of the listed strategies: `--init_strategy cyclegan`",
    ),
    UserErrorCase(
        "fit-missing-source",
        f"gan-init fit --config {NOISE_2D} --init_strategy cyclegan --source missing.ckpt",
        "a CycleGAN checkpoint that is not there",
        "gan-init fit: error: --source: missing.ckpt: no such checkpoint file",
        "`--source runs/<cyclegan run>/checkpoints/last.ckpt` (or a canonical `latest_net_G_B.pth`)",
    ),
    UserErrorCase(
        "pipeline-bad-strategy",
        "gan-init pipeline --init_strategy nope",
        "an unknown init strategy",
        "gan-init pipeline: --init_strategy: unknown init strategy 'nope' (known: cyclegan,",
        "one of the listed strategies (`gan-init pipeline --help` lists them)",
    ),
    UserErrorCase(
        "data-missing-folder",
        "gan-init data check nothere",
        "a data folder that does not exist",
        "gan-init data: data folder nothere does not exist (or is not a folder)",
        "`gan-init data check icbm`, or the path of your T1/T2 NIfTI folder",
    ),
    UserErrorCase(
        "data-empty-folder",
        "gan-init data check empty",
        "a folder without NIfTI files of the layout",
        "gan-init data: data folder empty is empty: expected T1/T2 NIfTI files matching "
        "'{subject}-T1.nii.gz' and '{subject}-T2.nii.gz'",
        "`--layout brats`, or `--layout custom --t1_pattern ... --t2_pattern ...`",
    ),
    UserErrorCase(
        "translate-missing-checkpoint",
        "gan-init translate --checkpoint missing.ckpt --input T2.nii.gz --output T1.nii.gz",
        "a checkpoint that is not there",
        "gan-init translate: error: missing.ckpt: no such checkpoint file",
        "`--checkpoint runs/<cyclegan run>/checkpoints/last.ckpt`",
    ),
    UserErrorCase(
        "translate-not-3d",
        "gan-init translate --checkpoint cyclegan_3d.ckpt --input slice.nii --output T1.nii.gz",
        "a 2D image (or a 4D series)",
        "gan-init translate: error: --input file slice.nii has shape (64, 64): expected one 3D "
        "volume",
        "extract the 3D volume first (e.g. `fslroi` for one volume of a series)",
    ),
    UserErrorCase(
        "translate-head-too-small",
        "gan-init translate --checkpoint cyclegan_3d.ckpt --input head_1mm.nii.gz "
        "--output T1.nii.gz",
        "a head much smaller than the training field of view (a wrong voxel size in the affine)",
        "gan-init translate: error: --input head_1mm.nii.gz: its head (voxels above the mean) "
        "spans",
        "give the volume its true voxel size in the affine (any spacing is resampled)",
    ),
    UserErrorCase(
        "translate-head-too-large",
        "gan-init translate --checkpoint cyclegan_3d.ckpt --input body.nii.gz --output T1.nii.gz",
        "a foreground much larger than the training field of view (neck, body, skull)",
        "gan-init translate: error: --input body.nii.gz: its head (voxels above the mean) spans",
        "crop the volume to the head; skull-strip it if the CycleGAN trained on brains",
    ),
    UserErrorCase(
        "translate-no-spacing",
        "gan-init translate --checkpoint old_3d.ckpt --input T2.nii.gz --output T1.nii.gz",
        "a checkpoint that records no training spacing, and a volume not at its shape",
        "gan-init translate: error: --input T2.nii.gz: the checkpoint records its training image "
        "shape (8x8x8) but no voxel spacing",
        "a volume preprocessed as the training data (that shape), or retrain the CycleGAN",
    ),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> str:
    """The Markdown table of :data:`CATALOG` ("Errors you may meet" in docs/cli.md)."""
    rows = [
        "| you typed | what is wrong | the message starts | fix | exit |",
        "| --- | --- | --- | --- | --- |",
    ]
    for case in CATALOG:
        cells = [f"`{case.command}`", case.input, f"`{case.message}`", case.fix, str(case.exit)]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
