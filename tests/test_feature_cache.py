"""The feature cache: each image measured once per run, the fixed real sets once per data and
feature settings (on disk), and a changed setting misses."""

from __future__ import annotations

import json
import os

import pytest
import torch
from pytorch_lightning import LightningDataModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gan_init.callbacks.evaluation import EvaluationCallback
from gan_init.metrics.feature_cache import CachedFeatures
from gan_init.metrics.features import SliceFeatures

DIMS = [pytest.param(2, id="2d"), pytest.param(3, id="3d")]


class Counting(nn.Module):
    """A fixed 2D "network" that counts the images it measures."""

    num_features = 4

    def __init__(self, fingerprint: str | None = "counting-v1") -> None:
        super().__init__()
        self.fingerprint = fingerprint
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return torch.stack(
            [x.mean((1, 2, 3)), x.amax((1, 2, 3)), x.amin((1, 2, 3)), x.std((1, 2, 3))], 1
        )


def _net(spatial_dims: int, slices: int = 1, fingerprint: str | None = "counting-v1"):
    counting = Counting(fingerprint)
    net = counting if spatial_dims == 2 else SliceFeatures(counting, slices_per_axis=slices)
    return net, counting


def _images(n: int, spatial_dims: int, seed: int, side: int = 9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, *(side,) * spatial_dims, generator=g) * 2 - 1


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_cache_reuses_features_in_memory_and_on_disk(tmp_path, spatial_dims):
    real = _images(5, spatial_dims, seed=0)
    net, counting = _net(spatial_dims)
    cache = CachedFeatures(net, directory=tmp_path)
    first = cache(real, persist=True)
    measured = counting.seen
    assert measured > 0 and cache.computed == 5
    # In memory: again, in other batches, or a subset: not measured again.
    assert torch.equal(torch.cat([cache(c) for c in real.split(2)]), first)
    assert torch.equal(cache(real[[3, 1]]), first[[3, 1]])
    assert counting.seen == measured
    # On disk: a new process (new extractor, new cache object) reads the set back.
    net2, counting2 = _net(spatial_dims)
    again = CachedFeatures(net2, directory=tmp_path)(real, persist=True)
    assert counting2.seen == 0 and torch.equal(again, first)
    # written with the mode any new file gets (shared data, shared cache), not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert {f.stat().st_mode & 0o777 for f in tmp_path.glob("*.pt")} == {0o666 & ~umask}


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_cache_misses_when_a_setting_changes(tmp_path, spatial_dims):
    real = _images(4, spatial_dims, seed=0)
    CachedFeatures(_net(spatial_dims)[0], directory=tmp_path)(real, persist=True)
    changes = {
        "data": (_net(spatial_dims), _images(4, spatial_dims, seed=1)),  # other images
        "n_real": (_net(spatial_dims), _images(5, spatial_dims, seed=0)[:3]),  # a subset
        "network": (_net(spatial_dims, fingerprint="counting-v2"), real),
    }
    if spatial_dims == 3:
        changes["slices"] = (_net(spatial_dims, slices=2), real)
    for name, ((net, counting), images) in changes.items():
        CachedFeatures(net, directory=tmp_path)(images, persist=True)
        assert counting.seen > 0, name
    # Without a fingerprint (a module of the caller's): memory only, nothing written.
    net, counting = _net(spatial_dims, fingerprint=None)
    before = sorted(tmp_path.iterdir())
    CachedFeatures(net, directory=tmp_path)(real, persist=True)
    assert counting.seen > 0 and sorted(tmp_path.iterdir()) == before


class _Data(LightningDataModule):
    def __init__(self, spatial_dims: int) -> None:
        super().__init__()
        self.shape = (1, *(8,) * spatial_dims)

    def real_images(self, n: int, split: str = "val") -> torch.Tensor:
        g = torch.Generator().manual_seed({"val": 0, "test": 1, "train": 2}[split])
        return torch.rand(n, *self.shape, generator=g) * 2 - 1

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(8, 1)), batch_size=4)


class _GAN(__import__("pytorch_lightning").LightningModule):
    def __init__(self, spatial_dims: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.images_shown = 0
        self.lin = nn.Linear(1, 1)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, ema: bool = True) -> torch.Tensor:
        return _images(n, self.spatial_dims, seed=100 + (seed or 0), side=8)

    def training_step(self, batch, batch_idx):
        self.images_shown += batch[0].shape[0]
        return self.lin(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _run(tmp_path, spatial_dims: int, cache_dir, n_real: int = 6) -> tuple[Counting, dict]:
    net, counting = _net(spatial_dims)
    cb = EvaluationCallback(
        every_n_images=0,
        final_metrics=("fid", "pr", "memo"),
        n_samples=6,
        n_real=n_real,
        n_train=6,
        feature=net,
        noise_floor=("fid", "kid"),
        feature_cache=cache_dir,
    )
    trainer = Trainer(
        default_root_dir=tmp_path, max_epochs=1, accelerator="cpu", logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        callbacks=[cb],
    )  # fmt: skip
    trainer.fit(_GAN(spatial_dims), datamodule=_Data(spatial_dims))
    return counting, json.loads((tmp_path / "metrics_final.json").read_text())["metrics"]


@pytest.mark.parametrize("spatial_dims", DIMS)
def test_a_second_run_measures_only_its_samples(tmp_path, spatial_dims):
    per_image = 1 if spatial_dims == 2 else 3  # 2.5D: one slice per axis
    cache = tmp_path / "cache"
    counting, first = _run(tmp_path / "a", spatial_dims, cache)
    # test, real (shared by the floor and the final metrics), samples, training images: once
    # each; memorization and precision/recall reuse FID's features.
    assert counting.seen == 4 * 6 * per_image
    counting, second = _run(tmp_path / "b", spatial_dims, cache)
    assert counting.seen == 6 * per_image and second == first  # the samples only
    counting, _ = _run(tmp_path / "c", spatial_dims, cache, n_real=5)  # another real set
    assert counting.seen == (6 + 5) * per_image  # the samples and the new real set
    counting, _ = _run(tmp_path / "d", spatial_dims, None)  # no disk cache
    assert counting.seen == 4 * 6 * per_image


@pytest.mark.parametrize(
    ("shape", "batches"), [((6, 6, 6), [12]), ((6, 7, 8), [4, 4, 4])], ids=["cubic", "odd"]
)
def test_slice_features_mean_over_axes_in_one_batch(shape, batches):
    counting = Counting()
    calls = []
    counting.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    vols = torch.rand(2, 1, *shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
    net = SliceFeatures(counting, slices_per_axis=2)
    feats = net(vols)
    # Cubic volumes: the three axes' slices go through the network as one batch.
    assert calls == batches
    expected = [
        counting(vols.select(axis, i))
        for axis in (2, 3, 4)
        for i in net.slice_indices(vols.shape[axis])
    ]
    assert torch.allclose(feats, torch.stack(expected).mean(0), atol=1e-6)
    assert net.fingerprint == "slices2@0.6|counting-v1"


def test_evaluate_command_reuses_the_real_sets_features(tmp_path, monkeypatch, capsys):
    import data_modules
    from gan_init import cli
    from gan_init.cli.commands import evaluate as evaluate_cmd
    from tests.test_metrics_evaluate_cmd import FakeData, FakeGAN

    monkeypatch.setattr(evaluate_cmd, "load_noise_gan", lambda path: FakeGAN())
    monkeypatch.setattr(data_modules, "FakeData", FakeData, raising=False)
    monkeypatch.setattr(evaluate_cmd, "cache_dir", lambda: tmp_path / "cache")
    config = tmp_path / "data.yaml"
    config.write_text("data:\n  class_path: data_modules.FakeData\n")
    seen = []
    for _ in range(2):
        counting = Counting()
        monkeypatch.setattr(evaluate_cmd, "load_feature_extractor", lambda *a, c=counting, **k: c)
        argv = ["evaluate", "--checkpoint", "x.ckpt", "--data", str(config), "--n", "6"]
        assert cli.main([*argv, "--metrics", "fid,memo", "--out", str(tmp_path / "m.json")]) == 0
        seen.append(counting.seen)
    # First: samples, real and training images once each; then the samples only (+2: the
    # estimate's timing probe).
    assert seen == [18 + 2, 6 + 2]
    assert "features of 6 images" in capsys.readouterr().err
