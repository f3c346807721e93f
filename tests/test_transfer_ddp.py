"""Weight transfer under DDP: 2 CPU processes (gloo) end with identical weights, right after the
transfer and after training steps with frozen weights released mid-run."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.builders.checkpoints import save_cyclegan
from tests.builders.networks import tiny_spec

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path

    import torch
    from pytorch_lightning import Callback

    from gan_init.callbacks import WeightTransfer
    from gan_init.cli import end_process_group
    from tests.builders.images import BlobData
    from tests.builders.networks import tiny_noise_gan
    from tests.builders.trainer import cpu_trainer


    def digest(module):
        h = hashlib.sha256()
        for key, value in sorted(module.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


    class Hashes(Callback):
        def __init__(self):
            self.out = {}

        def on_train_start(self, trainer, pl_module):
            self.out["after_transfer"] = digest(pl_module)
            self.out["trunk_frozen"] = not pl_module.generator.trunk.blocks[0].conv1.weight.requires_grad

        def on_train_end(self, trainer, pl_module):
            self.out["after_training"] = digest(pl_module)
            self.out["images_shown"] = pl_module.images_shown


    if __name__ == "__main__":
        source, out = sys.argv[1], Path(sys.argv[2])
        # A different seed per process: only the transfer and DDP may make the ranks agree.
        rank_seed = int(__import__("os").environ.get("LOCAL_RANK", 0))
        gan = tiny_noise_gan(2, "stem", seed=10 + rank_seed)
        hashes = Hashes()
        transfer = WeightTransfer("cyclegan_frozen", source=source, freeze_images=4)
        trainer = cpu_trainer(
            out, 2 * 4, [transfer, hashes], devices=2,
            strategy="ddp_find_unused_parameters_true",
        )
        trainer.fit(gan, BlobData(2, batch_size=1, n=16))
        hashes.out["trunk_checksum"] = float(gan.generator.trunk.blocks[0].conv1.weight.sum())
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(hashes.out))
        end_process_group()  # else gloo's threads can abort the exit
    """
)


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_ranks_end_with_identical_weights(tmp_path):
    save_cyclegan(tmp_path / "cyclegan.ckpt", tiny_spec(2))
    script = tmp_path / "ddp_transfer.py"
    script.write_text(SCRIPT)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cyclegan.ckpt"), str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["after_transfer"] == ranks[1]["after_transfer"]
    assert ranks[0]["after_training"] == ranks[1]["after_training"]
    assert ranks[0]["after_transfer"] != ranks[0]["after_training"]
    assert ranks[0]["trunk_frozen"] and ranks[1]["trunk_frozen"]
    # 4 batches of 1 image on each of 2 ranks: the frozen trunk was released after 4 images.
    assert ranks[0]["images_shown"] == 8
