"""Cost of one TransferDiagnostics measurement against one training step, for the built-in sweep
configs' networks (experiments/configs/noise_{2d,3d}_sweep.yaml) at their last (most costly) level
and batch size.

A measurement is: the weights of every generator part copied before the step (update ratio), the
weights copied after it, the distances, and one generator forward pass over ``n_latents`` fixed
latents at full resolution (CKA). A training step is one critic and one generator update of
``ProgressiveGAN`` (WGAN-GP), without data loading. The two are timed alternately in one process
(medians), so a busy machine slows both alike. Prints the ratio and the share of training time
at a given measurement interval.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_init.callbacks import TransferDiagnostics  # noqa: E402
from gan_init.models import ProgressiveGAN  # noqa: E402
from gan_init.networks import BackboneSpec, NoiseGenerator, ProgressiveDiscriminator  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def build(config: Path) -> tuple[ProgressiveGAN, list[int], list[int]]:
    """The config's ProgressiveGAN, and its schedule: images shown and batch size per level."""
    cfg = yaml.safe_load(config.read_text())
    model = cfg["model"]["init_args"]
    g_args = dict(model["generator"]["init_args"])
    g_args["backbone"] = BackboneSpec(**g_args["backbone"])
    gan = ProgressiveGAN(
        NoiseGenerator(**g_args),
        ProgressiveDiscriminator(**model["discriminator"]["init_args"]),
    )
    gan.manual_backward = lambda loss: loss.backward()  # no trainer: plain autograd
    schedule = next(
        c["init_args"]
        for c in cfg["trainer"]["callbacks"]
        if c["class_path"].endswith("ProgressiveSchedule")
    )
    images = [t + f for t, f in zip(schedule["train_images"], schedule["fade_images"])]
    return gan, images, [int(b) for b in schedule["batch_size"]]


def train_step(gan: ProgressiveGAN, real: torch.Tensor, opt_g, opt_d) -> None:
    gan._d_step(real, opt_d)
    gan._g_step(real.shape[0], opt_g)


def measurement(diag: TransferDiagnostics, gan: ProgressiveGAN) -> None:
    diag.measure(gan, before=diag.weights(gan))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n_latents", type=int, default=64)
    parser.add_argument("--every_n_images", type=int, nargs="+", default=[200, 400])
    args = parser.parse_args()
    torch.manual_seed(0)
    for name in ("noise_2d_sweep", "noise_3d_sweep"):
        gan, images, batches = build(CONFIGS / f"{name}.yaml")
        opt_g, opt_d = gan.configure_optimizers()
        diag = TransferDiagnostics(n_latents=args.n_latents)
        diag.reference_weights, diag.reference_grams = diag.weights(gan), diag.grams(gan)
        train_seconds, per_level = 0.0, []
        for level, (n_images, batch) in enumerate(zip(images, batches)):
            gan.set_progress(level, 1.0)
            side = gan.resolution
            real = torch.rand(batch, 1, *(side,) * gan.spatial_dims) * 2 - 1
            train_step(gan, real, opt_g, opt_d)  # warm up
            step = timed(partial(train_step, gan, real, opt_g, opt_d), args.repeats)
            train_seconds += n_images / batch * step
            per_level.append(f"{side}px b{batch} {step * 1e3:.0f} ms")
        measure = timed(partial(measurement, diag, gan), args.repeats)
        total = sum(images)
        print(f"{name}: {total} images; train step per level: {', '.join(per_level)}")
        print(
            f"  training compute {train_seconds:.1f} s (no data loading, no evaluation); one "
            f"measurement (n_latents {args.n_latents}) {measure * 1e3:.0f} ms"
        )
        for every in args.every_n_images:
            n = total // every + 1
            share = n * measure / (train_seconds + n * measure)
            print(f"  every {every} images: {n} measurements, {100 * share:.2f}% of the compute")


if __name__ == "__main__":
    main()
