"""The WeightTransfer callback through a real (tiny, CPU) Trainer: transfer at fit start, EMA from
the transferred weights, freezing stops updates and releasing restores them, resume transfers
nothing but keeps the freeze plan, and the summary reaches the console, loggers and a JSON file."""

import json

import pytest
import torch
from pytorch_lightning import Callback
from pytorch_lightning.loggers import CSVLogger

from gan_init.callbacks import ProgressiveSchedule, WeightTransfer
from gan_init.transfer import effective_state
from tests.builders.checkpoints import save_cyclegan
from tests.builders.images import BlobData, PhantomDataModule
from tests.builders.networks import tiny_cyclegan, tiny_noise_gan, tiny_spec


class Probe(Callback):
    """Per batch (at its start): images shown, requires_grad and a copy of the watched tensors."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.at_train_start: dict | None = None

    @staticmethod
    def watch(pl_module) -> dict:
        g = pl_module.generator
        return {
            "trunk": g.trunk.blocks[0].conv1.weight.detach().clone(),
            "head": g.head.conv.weight.detach().clone(),
            "stem": next(g.latent_stem.parameters()).detach().clone(),
            "ema_trunk": pl_module.generator_ema.trunk.blocks[0].conv1.weight.detach().clone(),
        }

    def on_train_start(self, trainer, pl_module):
        self.at_train_start = {
            **self.watch(pl_module),
            "trunk_grad": g_requires_grad(pl_module, "generator.trunk."),
        }

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rows.append(
            {
                "images": pl_module.images_shown,
                "trunk_grad": g_requires_grad(pl_module, "generator.trunk."),
                **self.watch(pl_module),
            }
        )


def g_requires_grad(pl_module, prefix: str) -> bool:
    flags = {p.requires_grad for n, p in pl_module.named_parameters() if n.startswith(prefix)}
    assert len(flags) == 1, flags
    return flags.pop()


@pytest.fixture
def source(saved_cyclegan):
    return saved_cyclegan.path


def test_fit_start_transfers_and_ema_starts_from_the_transferred_weights(
    tmp_path, make_trainer, source
):
    gan = tiny_noise_gan(2, "stem")
    probe = Probe()
    transfer = WeightTransfer("cyclegan", source=str(source))
    make_trainer(2, [transfer, probe]).fit(gan, BlobData(2))
    expected = effective_state(save_cyclegan(tmp_path / "again.ckpt", tiny_spec(2)).g_t2_to_t1)
    start = probe.at_train_start
    torch.testing.assert_close(start["trunk"], expected["trunk.blocks.0.conv1.weight"])
    torch.testing.assert_close(start["ema_trunk"], start["trunk"], rtol=0, atol=0)
    assert start["trunk_grad"]  # cyclegan does not freeze


@pytest.mark.slow
def test_freezing_stops_updates_and_releasing_restores_them(make_trainer, source):
    # Stem growth: every part runs from level 0, so the 4 images count from the start.
    gan = tiny_noise_gan(2, "stem")
    probe = Probe()
    transfer = WeightTransfer("cyclegan_frozen", source=str(source), freeze_images=4)
    make_trainer(2 * 4, [transfer, probe]).fit(gan, BlobData(2, batch_size=2))
    rows = probe.rows
    assert [r["images"] for r in rows] == [0, 2, 4, 6]
    assert [r["trunk_grad"] for r in rows] == [False, False, True, True]
    # Two steps while frozen: trunk and head unchanged (no update, no moment, no decay); the
    # latent stem trains meanwhile.
    for key in ("trunk", "head"):
        torch.testing.assert_close(rows[2][key], rows[0][key], rtol=0, atol=0)
        assert not torch.equal(rows[3][key], rows[2][key]), key
    assert not torch.equal(rows[1]["stem"], rows[0]["stem"])


@pytest.mark.slow
def test_full_growth_keeps_parts_frozen_until_their_level(make_trainer, source):
    gan = tiny_noise_gan(2, "full")  # levels 2, 4, 8, 16; the trunk runs from level 1
    probe = Probe()
    schedule = ProgressiveSchedule(train_images=4, fade_images=0)  # level 1 from 4 images on
    transfer = WeightTransfer("cyclegan_frozen", source=str(source), freeze_images=4)
    make_trainer(2 * 5, [schedule, transfer, probe]).fit(gan, BlobData(2))
    # Level 1 is reached at 4 images, so the trunk is released at 4 + 4.
    assert [r["images"] for r in probe.rows] == [0, 2, 4, 6, 8]
    assert [r["trunk_grad"] for r in probe.rows] == [False, False, False, False, True]
    assert transfer.level_reached_at == {0: 0, 1: 4, 2: 8}


def test_resume_transfers_nothing_and_keeps_the_freeze_plan(tmp_path, make_trainer, source):
    gan = tiny_noise_gan(2, "stem")
    transfer = WeightTransfer("cyclegan_frozen", source=str(source), freeze_images=1000)
    trainer = make_trainer(2 * 2, [transfer])
    trainer.fit(gan, BlobData(2))
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = {k: v.clone() for k, v in gan.state_dict().items()}

    # Resume with a different source: were anything transferred, the trunk would change.
    other = tmp_path / "other.ckpt"
    save_cyclegan(other, tiny_spec(2), seed=7)
    resumed = tiny_noise_gan(2, "stem", seed=9)
    probe = Probe()
    again = WeightTransfer("cyclegan_frozen", source=str(other), freeze_images=1000)
    make_trainer(2 * 3, [again, probe]).fit(resumed, BlobData(2), ckpt_path=ckpt)
    start = probe.at_train_start
    torch.testing.assert_close(start["trunk"], saved["generator.trunk.blocks.0.conv1.weight"])
    torch.testing.assert_close(
        start["ema_trunk"], saved["generator_ema.trunk.blocks.0.conv1.weight"]
    )
    assert start["trunk_grad"] is False  # requires_grad is not in checkpoints: re-applied
    assert [r.prefix for r in again.rules] == [r.prefix for r in transfer.rules]
    assert again.summary == transfer.summary  # the original run's summary, not a new one


def test_summary_goes_to_json_and_loggers(tmp_path, make_trainer, source, caplog):
    gan = tiny_noise_gan(2, "full")
    logger = CSVLogger(tmp_path, name="csv", version="")
    transfer = WeightTransfer("cyclegan_g_and_d", source=str(source))
    with caplog.at_level("INFO"):
        make_trainer(2, [transfer], logger=logger).fit(gan, BlobData(2))
    summary = json.loads((tmp_path / "csv" / "transfer_summary.json").read_text())
    assert summary["init_strategy"] == "cyclegan_g_and_d" and summary["source"] == str(source)
    assert [c["to"] for c in summary["copies"]] == [
        "generator.trunk", "generator.decoder", "generator.head", "discriminator.blocks.b16.conv0",
    ]  # fmt: skip
    parts = summary["parts"]
    assert parts["discriminator"]["copied_tensors"] == 2  # the patch stem's weight and bias
    assert parts["latent_stem"]["copied_tensors"] == 0 and parts["total"]["frozen_tensors"] == 0
    hparams = (tmp_path / "csv" / "hparams.yaml").read_text()
    assert "transfer/init_strategy: cyclegan_g_and_d" in hparams
    assert f"transfer/trunk/copied_parameters: {parts['trunk']['copied_parameters']}" in hparams
    assert "WeightTransfer: init strategy 'cyclegan_g_and_d'" in caplog.text
    assert "latent_stem" in caplog.text


def test_scratch_copies_nothing_and_reports_it(tmp_path, make_trainer):
    gan = tiny_noise_gan(2, "stem")
    before = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    transfer = WeightTransfer("scratch")
    make_trainer(0, [transfer]).fit(gan, BlobData(2))
    assert all(torch.equal(before[k], v) for k, v in gan.generator.state_dict().items())
    assert transfer.summary["parts"]["total"]["copied_tensors"] == 0
    assert (tmp_path / "transfer_summary.json").is_file()


def test_callback_errors_are_named(make_trainer, source):
    with pytest.raises(ValueError, match="did you mean 'cyclegan'"):
        WeightTransfer("cyclegn")
    with pytest.raises(ValueError, match="no source was given"):
        make_trainer(2, [WeightTransfer("cyclegan")]).fit(tiny_noise_gan(2, "stem"), BlobData(2))
    with pytest.raises(TypeError, match="starts a noise GAN.*CycleGAN"):
        make_trainer(2, [WeightTransfer("cyclegan", source=str(source))]).fit(
            tiny_cyclegan(2), PhantomDataModule(2)
        )
