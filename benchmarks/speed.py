"""Training-step speed: each speed option against its baseline, 2D and 3D, measured in one run.

    .venv/bin/python benchmarks/speed.py [--rounds 5] [--steps 4] [--no-compile] [--out x.json]

CycleGAN (cyclegan_{2d,3d}.yaml networks: 64^2 batch 4 width 8 3 blocks; 32^3 batch 2 width 4
2 blocks, PatchGAN width 8): the baseline is a plain PyTorch fp32 loop over the same networks,
the reference pytorch-CycleGAN ``optimize_parameters`` (G forward, G losses backward with D
frozen, D backward on pooled fakes, two Adam steps). Each variant is this project's Lightning
training step (``trainer.fit`` on in-memory batches, per-batch wall time from a callback) with
one option set (bf16 = ``precision: bf16-mixed``; cl = ``SpeedOptions(channels_last=True)``;
compile = ``SpeedOptions(compile=True)``). Noise GAN (noise_{2d,3d}.yaml networks at their top
level and batch): the baseline is the fp32 Lightning step. Rounds visit baseline and variants in
turn (blocks of ``--steps`` batches); a ratio is median(baseline) / median(variant), > 1 = faster.
The compile variant's one-off compile time is reported apart.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from gan_init.callbacks import SpeedOptions
from gan_init.models import CycleGAN, ProgressiveGAN
from gan_init.models.cyclegan import ImagePool
from gan_init.networks import (
    BackboneSpec,
    CycleGANGenerator,
    NoiseGenerator,
    PatchGANDiscriminator,
    ProgressiveDiscriminator,
)

CYCLEGAN = {  # cyclegan_{2d,3d}.yaml
    2: dict(size=64, batch=4, width=8, blocks=3, d_width=8),
    3: dict(size=32, batch=2, width=4, blocks=2, d_width=8),
}
NOISE = {  # noise_{2d,3d}.yaml at the top level
    2: dict(size=64, batch=16, width=8, blocks=3, d_width=8, d_max=64, latent=128),
    3: dict(size=32, batch=8, width=4, blocks=2, d_width=8, d_max=32, latent=64),
}


class Batches(Dataset):
    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batches[i]


class StepTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self._t)


def cyclegan_networks(d: int) -> tuple[CycleGANGenerator, PatchGANDiscriminator]:
    c = CYCLEGAN[d]
    spec = BackboneSpec(spatial_dims=d, base_width=c["width"], n_blocks=c["blocks"])
    return CycleGANGenerator(spec), PatchGANDiscriminator(spatial_dims=d, base_width=c["d_width"])


def reference_cyclegan_loop(model: CycleGAN, batches: list[dict[str, torch.Tensor]]):
    """pytorch-CycleGAN-and-pix2pix ``CycleGANModel.optimize_parameters`` over ``model``'s
    networks (A = T2, B = T1; G_A = g_t2_to_t1, D_A judges G_A's output), plain PyTorch fp32."""
    g_a, g_b, d_a, d_b = model.g_t2_to_t1, model.g_t1_to_t2, model.d_t1, model.d_t2
    opt_g = torch.optim.Adam([*g_a.parameters(), *g_b.parameters()], 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], 2e-4, betas=(0.5, 0.999))
    pool_a, pool_b = ImagePool(50), ImagePool(50)

    def gan(pred, real):
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))

    def step(i: int) -> None:
        real_a, real_b = batches[i % len(batches)]["t2"], batches[i % len(batches)]["t1"]
        fake_b = g_a(real_a)  # forward()
        rec_a = g_b(fake_b)
        fake_a = g_b(real_b)
        rec_b = g_a(fake_a)
        for p in [*d_a.parameters(), *d_b.parameters()]:
            p.requires_grad_(False)
        opt_g.zero_grad()  # backward_G
        idt_a, idt_b = g_a(real_b), g_b(real_a)
        loss_g = (
            gan(d_a(fake_b), True)
            + gan(d_b(fake_a), True)
            + 10 * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b))
            + 5 * (F.l1_loss(idt_a, real_b) + F.l1_loss(idt_b, real_a))
        )
        loss_g.backward()
        opt_g.step()
        for p in [*d_a.parameters(), *d_b.parameters()]:
            p.requires_grad_(True)
        opt_d.zero_grad()  # backward_D_A, backward_D_B
        for d, real, fake, pool in ((d_a, real_b, fake_b, pool_b), (d_b, real_a, fake_a, pool_a)):
            fake = pool.query(fake.detach())
            (0.5 * (gan(d(real), True) + gan(d(fake), False))).backward()
        opt_d.step()

    return step


def lightning_block(model, batches, steps, precision, speed, collate=None):
    """Per-batch wall times of ``trainer.fit`` over ``steps + 1`` batches (the first dropped)."""
    timer = StepTimer()
    callbacks = [timer] + ([speed] if speed is not None else [])
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, precision=precision, max_steps=-1, max_epochs=1,
        limit_train_batches=steps + 1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        log_every_n_steps=10, callbacks=callbacks,
    )  # fmt: skip
    loader = DataLoader(Batches(batches), batch_size=None, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, loader)
    return timer.times[1:]


def run_cases(cases, rounds: int) -> dict[str, list[float]]:
    """``cases``: name -> callable() returning per-iteration times; visited in turn per round."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name] += fn()
    return times


def median_ms(ts: list[float]) -> float:
    return 1000 * statistics.median(ts)


def cyclegan_cases(d: int, steps: int, compile_: bool, compile_times: dict):
    torch.manual_seed(0)
    c = CYCLEGAN[d]
    g, disc = cyclegan_networks(d)
    base = CycleGAN(g, disc, pool_size=50)
    shape = (c["batch"], 1, *(c["size"],) * d)
    batches = [{"t1": torch.rand(shape) * 2 - 1, "t2": torch.rand(shape) * 2 - 1} for _ in range(4)]
    ref_model = copy.deepcopy(base)
    ref_step = reference_cyclegan_loop(ref_model, batches)
    ref_step(0)  # warm-up

    def reference():
        out = []
        for i in range(steps):
            t = time.perf_counter()
            ref_step(i)
            out.append(time.perf_counter() - t)
        return out

    variants = {
        "lightning_fp32": ("32-true", {}),
        "bf16": ("bf16-mixed", {}),
        "channels_last": ("32-true", {"channels_last": True}),
        "bf16+channels_last": ("bf16-mixed", {"channels_last": True}),
    }
    if compile_:
        variants["compile"] = ("32-true", {"compile": True})
        variants["bf16+channels_last+compile"] = (
            "bf16-mixed", {"channels_last": True, "compile": True},
        )  # fmt: skip
    cases = {"reference_fp32": reference}
    for name, (precision, opts) in variants.items():
        model = copy.deepcopy(base)
        speed = SpeedOptions(**opts) if opts else None
        t = time.perf_counter()
        lightning_block(model, batches, 1, precision, speed)  # warm-up (and compile)
        if opts.get("compile"):
            compile_times[f"cyclegan_{d}d/{name}"] = round(time.perf_counter() - t, 1)
        cases[name] = lambda m=model, p=precision, s=speed: lightning_block(m, batches, steps, p, s)
    return cases


def noise_cases(d: int, steps: int):
    torch.manual_seed(0)
    c = NOISE[d]
    spec = BackboneSpec(spatial_dims=d, base_width=c["width"], n_blocks=c["blocks"])
    g = NoiseGenerator(image_size=c["size"], latent_dim=c["latent"], backbone=spec)
    disc = ProgressiveDiscriminator(
        spatial_dims=d, image_size=c["size"], base_width=c["d_width"], max_width=c["d_max"],
        equalized_lr=True,
    )  # fmt: skip
    base = ProgressiveGAN(g, disc)
    shape = (c["batch"], 1, *(c["size"],) * d)
    batches = [{"image": torch.rand(shape) * 2 - 1} for _ in range(4)]
    variants = {
        "fp32": ("32-true", {}),
        "bf16": ("bf16-mixed", {}),
        "channels_last": ("32-true", {"channels_last": True}),
        "bf16+channels_last": ("bf16-mixed", {"channels_last": True}),
    }
    cases = {}
    for name, (precision, opts) in variants.items():
        model = copy.deepcopy(base)
        speed = SpeedOptions(**opts)
        lightning_block(model, batches, 1, precision, speed)
        cases[name] = lambda m=model, p=precision, s=speed: lightning_block(m, batches, steps, p, s)
    return cases


def checkpoint_cases(d: int, steps: int):
    """Time of the 3D generator's forward+backward with the trunk checkpointed, vs without."""
    torch.manual_seed(0)
    c = CYCLEGAN[d]
    plain, _ = cyclegan_networks(d)
    ckpt = copy.deepcopy(plain)
    ckpt.trunk.checkpointing = True
    x = torch.rand(c["batch"], 1, *(c["size"],) * d) * 2 - 1

    def timed(net):
        def fn():
            out = []
            for _ in range(steps):
                t = time.perf_counter()
                net.zero_grad(set_to_none=True)
                net(x).square().mean().backward()
                out.append(time.perf_counter() - t)
            return out

        return fn

    return {"no_checkpoint": timed(plain), "checkpoint_trunk": timed(ckpt)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the compile variants")
    parser.add_argument("--dims", default="2,3")
    parser.add_argument("--out", default="runs/bench/speed.json")
    # One thread by default: on a shared, oversubscribed 2-core machine OpenMP's spinning
    # threads made a 2-thread step 10-25x slower than a 1-thread one (measured here).
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"machine": machine(), "ratios": {}, "median_ms": {}, "compile_s": {}}
    dims = [int(x) for x in args.dims.split(",")]
    for d in dims:
        groups = {
            f"cyclegan_{d}d": ("reference_fp32", cyclegan_cases(
                d, args.steps, not args.no_compile, results["compile_s"])),
            f"noise_{d}d": ("fp32", noise_cases(d, args.steps)),
        }  # fmt: skip
        if d == 3:
            groups["checkpoint_trunk_3d"] = ("no_checkpoint", checkpoint_cases(d, args.steps))
        for group, (baseline, cases) in groups.items():
            times = run_cases(cases, args.rounds)
            med = {name: median_ms(ts) for name, ts in times.items()}
            results["median_ms"][group] = {k: round(v, 1) for k, v in med.items()}
            for name, ms in med.items():
                if name != baseline:
                    ratio = med[baseline] / ms
                    results["ratios"][f"{group}/{name}"] = round(ratio, 3)
                    print(
                        f"{group} {name}: {ms:.1f} ms vs {baseline} {med[baseline]:.1f} ms: "
                        f"speed-up x{ratio:.2f}",
                        flush=True,
                    )
    results["machine"]["threads"] = torch.get_num_threads()
    for name, s in results["compile_s"].items():
        print(f"{name}: one-off compile time {s:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


def machine() -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


if __name__ == "__main__":
    main()
