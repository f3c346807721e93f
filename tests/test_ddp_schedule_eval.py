"""The progressive schedule and the evaluation callback under DDP (2 CPU processes, gloo): both
ranks count the same global images shown, grow at the same image counts, evaluate at the same
moments and log the same (synced) metric values; the final metrics and the memorization pairs
work on the gathered samples."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import torch
    from pytorch_lightning import Callback

    from gan_init.callbacks import EvaluationCallback, ProgressiveSchedule
    from gan_init.cli import end_process_group
    from tests.builders.images import BlobData, Blobs
    from tests.builders.networks import tiny_noise_gan
    from tests.builders.trainer import cpu_trainer


    class Data(BlobData):
        def real_images(self, n, split="val"):
            return Blobs(self.spatial_dims, n).images


    class Record(Callback):
        def __init__(self):
            self.starts, self.evals = [], []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            g = pl_module.generator
            self.starts.append([int(pl_module.images_shown), g.current_level, g.current_alpha])

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            swd = trainer.callback_metrics.pop("eval/swd", None)
            if swd is not None:
                self.evals.append([int(pl_module.images_shown), float(swd)])


    if __name__ == "__main__":
        out = Path(sys.argv[1])
        rank = int(os.environ.get("LOCAL_RANK", 0))
        gan = tiny_noise_gan(2, "stem", seed=10 + rank)  # DDP must make the ranks agree
        schedule = ProgressiveSchedule(train_images=[4, 8], fade_images=[0, 4])
        evaluation = EvaluationCallback(
            every_n_images=4, metrics=["swd"], costly_metrics=[],
            final_metrics=["swd", "msssim", "memo"], n_samples=8, n_real=8, n_train=8, feature=None,
        )
        record = Record()
        trainer = cpu_trainer(
            out, 1000, [schedule, evaluation, record], devices=2,
            strategy="ddp_find_unused_parameters_true",
        )
        trainer.fit(gan, Data(2, batch_size=1, n=32))
        result = {
            "starts": record.starts, "evals": record.evals, "final": evaluation.last,
            "images_shown": int(gan.images_shown), "bounds": schedule.bounds,
        }
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))
        end_process_group()  # else gloo's threads can abort the exit
    """
)


@pytest.mark.slow
@pytest.mark.ddp
def test_schedule_and_evaluation_agree_across_ranks(tmp_path):
    script = tmp_path / "ddp_schedule.py"
    script.write_text(SCRIPT)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    # Images are counted over both ranks (1 per rank per step) and the run stops at the end of
    # the schedule: 4 images at level 0, 4 of fade-in and 8 at level 1.
    assert r0["images_shown"] == r1["images_shown"] == 16
    assert r0["starts"] == r1["starts"]
    assert [s[0] for s in r0["starts"]] == list(range(0, 16, 2))
    expected = {0: (0, 1.0), 2: (0, 1.0), 4: (1, 0.0), 6: (1, 0.5), 8: (1, 1.0), 14: (1, 1.0)}
    for shown, level, alpha in r0["starts"]:
        if shown in expected:
            assert (level, alpha) == pytest.approx(expected[shown]), shown
    # Evaluations at the same global counts on both ranks, with the same synced values.
    assert [e[0] for e in r0["evals"]] == [4, 8, 12, 16]
    assert r0["evals"] == r1["evals"]
    assert r0["final"] == r1["final"] and r0["final"]["swd"] > 0
    assert {"msssim_fake", "memo_fraction"} <= set(r0["final"])
    # rank 0 saved the closest pairs from all ranks' samples (it indexes the gathered set)
    assert (tmp_path / "memorization_closest_pairs.png").is_file()
