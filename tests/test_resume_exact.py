"""Exact resume: a ``gan-init fit`` run killed with SIGKILL right after a checkpoint and resumed
with ``--ckpt_path`` ends with the same weights, bit for bit, as the run that was never stopped
(both stages, 2D and 3D; killed mid-epoch and at an epoch's end)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from gan_init.experiment.pipeline import CONFIGS, load_yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

# Callbacks the test configs name: one kills its own process (SIGKILL, no clean-up) at the start
# of the first batch after global step KILL_AT_STEP (so right after that step's checkpoint); the
# other writes the final state_dict.
HELPERS = textwrap.dedent(
    """
    import os, signal
    from pathlib import Path

    import torch
    from pytorch_lightning import Callback


    class KillAfterStep(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            at = os.environ.get("KILL_AT_STEP")
            if at is not None and trainer.global_step >= int(at):
                os.kill(os.getpid(), signal.SIGKILL)


    class SaveFinalState(Callback):
        def on_train_end(self, trainer, pl_module):
            state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
            torch.save(state, Path(trainer.default_root_dir) / "final.pt")
    """
)


def _callbacks(kept: list[dict]) -> list[dict]:
    return [
        *kept,
        {"class_path": "resume_helpers.KillAfterStep"},
        {"class_path": "resume_helpers.SaveFinalState"},
        {
            "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
            "init_args": {"every_n_train_steps": 2, "save_top_k": -1, "save_last": False},
        },
    ]


def noise_config(dims: int) -> dict:
    """The shipped noise config, shrunk: 16 px (2D) or 8^3 (3D), widths 4, 3 or 2 levels, the
    batch size changing per level, short epochs, a dataloader worker."""
    size = 16 if dims == 2 else 8
    config = load_yaml(CONFIGS / f"noise_{dims}d.yaml")
    config["trainer"].update(logger=False, enable_progress_bar=False, enable_model_summary=False)
    n_levels = 3 if dims == 2 else 2
    schedule = {
        "class_path": "gan_init.callbacks.ProgressiveSchedule",
        "init_args": {
            "train_images": [8] * n_levels,
            "fade_images": [0] + [4] * (n_levels - 1),
            "batch_size": [4] * (n_levels - 1) + [2],
        },
    }
    ema = {"class_path": "gan_init.callbacks.EMA", "init_args": {"decay": 0.9}}
    config["trainer"]["callbacks"] = _callbacks([schedule, ema])
    gen = config["model"]["init_args"]["generator"]["init_args"]
    gen.update(image_size=size, latent_dim=8)
    gen["backbone"].update(base_width=4, n_blocks=1, n_down=1)
    disc = config["model"]["init_args"]["discriminator"]["init_args"]
    disc.update(image_size=size, base_width=4, max_width=8)
    config["data"]["init_args"].update(
        size=size, batch_size=4, samples_per_epoch=8, num_workers=1, val_samples=4
    )
    return config


def cyclegan_config(dims: int) -> dict:
    """The shipped CycleGAN config, shrunk: 3 epochs of 2 batches, LR decay, a pool of 3 fakes
    (full after two batches, so its random swaps run), validation every epoch."""
    size = 16 if dims == 2 else 8
    config = load_yaml(CONFIGS / f"cyclegan_{dims}d.yaml")
    config["trainer"].update(
        logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=3
    )
    config["trainer"]["callbacks"] = _callbacks([])
    model = config["model"]["init_args"]
    model.update(epochs_constant=1, epochs_decay=2, ssim_kernel=3, pool_size=3)
    model["generator"]["init_args"]["backbone"].update(base_width=4, n_blocks=1, n_down=1)
    model["discriminator"]["init_args"].update(base_width=4, n_layers=1)
    config["data"]["init_args"].update(
        size=size, batch_size=2, samples_per_epoch=4, val_samples=2, num_workers=0
    )
    return config


def fit(config: Path, root: Path, *extra: str, kill_at: int | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "KILL_AT_STEP"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(root.parent)])
    env["WANDB_MODE"] = "disabled"
    env["OMP_NUM_THREADS"] = "1"  # tiny convolutions: threads only contend
    if kill_at is not None:
        env["KILL_AT_STEP"] = str(kill_at)
    args = ["fit", "--config", str(config), "--trainer.default_root_dir", str(root), *extra]
    result = subprocess.run(
        [sys.executable, "-m", "gan_init", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"gan-init fit failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.returncode


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:5]}"


# Kill steps (global steps; two optimizer steps per batch). Noise 2D: epochs of 2 batches of 4
# then 4 batches of 2 from the 4th epoch (level 2): step 14 is mid-epoch, after the batch-size
# change. Noise 3D: 2 batches of 4, then 4 of 2: step 12 ends the 2nd epoch (the resume starts a
# new one). CycleGAN: 3 epochs of 2 batches; step 6 is mid-epoch, step 4 an epoch's end.
CASES = [
    ("noise", 2, 14),
    ("noise", 3, 12),
    ("cyclegan", 2, 6),
    ("cyclegan", 3, 4),
]


@pytest.mark.parametrize(("stage", "dims", "kill_at"), CASES)
def test_killed_and_resumed_run_ends_with_the_uninterrupted_weights(tmp_path, stage, dims, kill_at):
    (tmp_path / "resume_helpers.py").write_text(HELPERS)
    config = noise_config(dims) if stage == "noise" else cyclegan_config(dims)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert fit(path, straight) == 0
    assert fit(path, killed, kill_at=kill_at) == -signal.SIGKILL
    assert not (killed / "final.pt").exists()
    (ckpt,) = (killed / "checkpoints").glob(f"*-step={kill_at}.ckpt")
    assert fit(path, killed, "--ckpt_path", str(ckpt)) == 0

    final = torch.load(straight / "final.pt", weights_only=True)
    resumed = torch.load(killed / "final.pt", weights_only=True)
    assert_same_state(final, resumed)
    if stage == "noise":
        assert any(k.startswith("generator_ema.") for k in final)


PIPELINE_HELPERS = HELPERS + textwrap.dedent(
    """

    class KillPipelineAfterStep(Callback):
        # SIGKILL to the `gan-init pipeline` that started this trainer (no clean-up there); the
        # trainer gets SIGTERM from the kernel (parent-death signal) and saves before it exits.
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            at = os.environ.get("KILL_PIPELINE_AT_STEP")
            if at is not None and trainer.global_step >= int(at):
                os.environ.pop("KILL_PIPELINE_AT_STEP")
                os.kill(os.getppid(), signal.SIGKILL)
    """
)


def test_a_pipeline_killed_mid_run_and_started_again_ends_with_the_uninterrupted_weights(tmp_path):
    """Through `gan-init pipeline`: SIGKILL to the pipeline mid noise-GAN run; its trainer saves
    on the parent-death signal; the same command again resumes and ends bit-identical."""
    from filelock import FileLock

    from tests.tiny_configs import shrink

    (tmp_path / "resume_helpers.py").write_text(PIPELINE_HELPERS)
    cyc = shrink(load_yaml(CONFIGS / "cyclegan_2d.yaml"), 16)
    noise = shrink(load_yaml(CONFIGS / "noise_2d.yaml"), 16)
    keep = ("ProgressiveSchedule", "EMA", "TransferDiagnostics", "ModelCheckpoint")
    callbacks = [cb for cb in noise["trainer"]["callbacks"] if cb["class_path"].endswith(keep)]
    for cb in callbacks:
        if cb["class_path"].endswith("TransferDiagnostics"):
            cb["init_args"].update(every_n_images=8, n_latents=4)
    noise["trainer"]["callbacks"] = [
        *callbacks,
        {"class_path": "resume_helpers.KillPipelineAfterStep"},
        {"class_path": "resume_helpers.SaveFinalState"},
    ]
    noise["data"]["init_args"].update(num_workers=0, samples_per_epoch=8)
    paths = tmp_path / "cyc.yaml", tmp_path / "noise.yaml"
    for path, config in zip(paths, (cyc, noise)):
        path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILL_")}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]), WANDB_MODE="disabled")
    env["OMP_NUM_THREADS"] = "1"
    runs = tmp_path / "runs"

    def pipeline(name: str, **extra_env: str) -> int:
        cmd = [sys.executable, "-m", "gan_init", "pipeline", "--dims", "2", "--grow", "stem",
               "--cyclegan_config", str(paths[0]), "--noise_config", str(paths[1]),
               "--runs_dir", str(runs), "--name", name, "--n_samples", "2"]  # fmt: skip
        done = subprocess.run(cmd, cwd=REPO, env={**env, **extra_env}, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        assert done.returncode in (0, -signal.SIGKILL), done.stdout[-3000:] + done.stderr[-3000:]
        return done.returncode

    assert pipeline("straight") == 0
    assert pipeline("killed", KILL_PIPELINE_AT_STEP="10") == -signal.SIGKILL
    killed = runs / "noise" / "killed"
    # The orphaned trainer saves and exits (it holds its checkpoint folder's lock until then).
    FileLock(killed / ".checkpoints.lock").acquire(timeout=120)
    assert (killed / "checkpoints" / "last.ckpt").is_file() and not (killed / "final.pt").exists()
    assert pipeline("killed") == 0
    assert_same_state(
        torch.load(runs / "noise" / "straight" / "final.pt", weights_only=True),
        torch.load(killed / "final.pt", weights_only=True),
    )
