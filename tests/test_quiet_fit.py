"""A fit ends without Lightning's "`weights_only` was not set" line: the end-of-training save
says it keeps the full training state."""

import logging

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from gan_init.callbacks.preemption import PreemptionCheckpoint


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, _):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fit_end_save_logs_no_weights_only_line(tmp_path, caplog):
    data = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = pl.Trainer(
        default_root_dir=tmp_path, max_steps=2, logger=False, enable_progress_bar=False,
        accelerator="cpu", enable_model_summary=False,
        callbacks=[
            ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True, save_top_k=0),
            PreemptionCheckpoint(),
        ],
    )  # fmt: skip
    with caplog.at_level(logging.INFO):
        trainer.fit(Tiny(), data)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "weights_only" not in caplog.text
    # The full state for a resume, and no pickled code: it loads with weights_only=True.
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert "optimizer_states" in state and "callbacks" in state
