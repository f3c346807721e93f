"""The gan-init command: dispatch, help, typos, and python -m."""

import subprocess
import sys

from gan_init import cli


def test_help_lists_commands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "usage: gan-init" in out


def test_unknown_command_suggests_the_nearest(capsys):
    assert cli.main(["fti"]) == 2
    assert "did you mean 'fit'" in capsys.readouterr().err


def test_extra_commands_point_at_importable_modules():
    import importlib

    for name, (module, help_) in cli.EXTRA_COMMANDS.items():
        assert help_, name
        assert callable(importlib.import_module(module).main), name


def test_python_dash_m_runs_lightning_cli_help():
    out = subprocess.run(
        [sys.executable, "-m", "gan_init", "fit", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--trainer.max_steps" in out and "--config" in out


def test_wandb_defaults_to_offline_without_a_key(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cli._default_wandb_offline()
    import os

    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    cli._default_wandb_offline()
    assert "WANDB_MODE" not in os.environ
