"""The "Errors you may meet" of docs/cli.md is what the commands really print: every catalogued
command is run (``gan_init.cli.main``, in the test's own folder) and must exit with the catalogued
status and print one line starting as the catalogue says, no traceback; the table in docs/cli.md
must be the catalogue's."""

from __future__ import annotations

import shlex
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gan_init.cli import main as cli_main
from gan_init.cli.error_catalog import CATALOG, table
from tests.builders.checkpoints import write_checkpoint
from tests.builders.nifti import GRID, HEAD_RADII_MM, write_head, write_nifti

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Errors you may meet"


def make_inputs(folder: Path) -> None:
    """The files the catalogued commands name, 3D, made small."""
    (folder / "experiments").symlink_to(ROOT / "experiments")
    shape, spacing = GRID[3]
    write_checkpoint(folder / "cyclegan_3d.ckpt", 3, shape, spacing)
    write_checkpoint(folder / "old_3d.ckpt", 3, shape)  # no voxel spacing recorded
    write_nifti(folder / "T2.nii.gz")  # 11 x 13 x 9
    write_head(folder / "head_1mm.nii.gz", zooms=(1.0, 1.0, 1.0), radii=HEAD_RADII_MM / 4)
    write_head(folder / "body.nii.gz", radii=HEAD_RADII_MM * 2)
    nib.save(nib.Nifti1Image(np.ones((64, 64), np.float32), np.eye(4)), str(folder / "slice.nii"))
    (folder / "empty").mkdir()


@pytest.mark.parametrize("case", CATALOG, ids=[c.name for c in CATALOG])
def test_each_catalogued_error_is_the_line_the_command_prints(tmp_path, monkeypatch, capsys, case):
    make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    argv = shlex.split(case.command)
    assert argv[0] == "gan-init"
    code = cli_main(argv[1:])
    err = capsys.readouterr().err
    assert code == case.exit and "Traceback" not in err, err[-2000:]
    hits = [line for line in err.splitlines() if line.startswith(case.message)]
    assert len(hits) == 1, (case.message, err[-2000:])


def test_docs_table_is_the_catalogue():
    doc = (ROOT / "docs" / "cli.md").read_text()
    assert HEADING in doc, f"docs/cli.md has no {HEADING!r} section"
    section = doc.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert "\n".join(rows) == table(), "regenerate it: python -m gan_init.cli.error_catalog"


def test_catalogue_names_are_unique_and_messages_name_the_command():
    assert len({c.name for c in CATALOG}) == len(CATALOG)
    for case in CATALOG:
        command = shlex.split(case.command)[1]
        assert case.message.startswith(("gan-init: ", f"gan-init {command}")), case.name
