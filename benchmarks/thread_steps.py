"""A training step at 1 and at 2 CPU threads, at each CPU config's size, against the thread
policy's choice (gan_init.core.threads): is the thread count it picks the faster one?

    python benchmarks/thread_steps.py [--steps 5] [--rounds 3] [--configs noise_2d,...]

Each config's model is built as configured (its top level for the noise GAN, at the last
batch size of its schedule) and one step's compute runs on synthetic images: the generator
phase and the discriminator phase (with the gradient penalty for the noise GAN), forward and
backward. Rounds alternate the thread counts; the time is the median step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import yaml

from gan_init.cli.commands.memory import _batch_size, _build
from gan_init.core.threads import available_cpus, choose_threads

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [
    "noise_2d_sweep", "noise_3d_sweep", "cyclegan_2d_sweep", "cyclegan_3d_sweep",
    "noise_2d", "noise_3d", "cyclegan_2d", "cyclegan_3d",
]  # fmt: skip


def step_fn(config: dict):
    model = _build(config["model"])
    side, batch = int(config["data"]["init_args"]["size"]), _batch_size(config)
    x = torch.randn(batch, 1, *(side,) * int(model.spatial_dims))
    if hasattr(model, "generator_phase"):  # CycleGAN

        def step() -> None:
            out = model.generator_phase(x, x)
            out["loss_g"].backward()
            loss_d = sum(
                net(x).mean() - net(fake.detach()).mean()
                for net, fake in ((model.d_t1, out["fake_t1"]), (model.d_t2, out["fake_t2"]))
            )
            loss_d.backward()
            model.zero_grad(set_to_none=True)

    else:
        from gan_init.models.progressive import gradient_penalty

        def step() -> None:
            z = torch.randn(batch, model.latent_dim)
            with torch.no_grad():
                fake = model.generator(z)
            loss_d = model.discriminator(fake).mean() - model.discriminator(x).mean()
            (loss_d + gradient_penalty(model.discriminator, x, fake)).backward()
            model.discriminator(model.generator(z)).mean().backward()
            model.zero_grad(set_to_none=True)

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--out", default=None)
    args = p.parse_args()
    cpus = available_cpus()
    counts = sorted({1, min(2, cpus)})
    results = {}
    print(f"training step, ms (median of {args.rounds} x {args.steps}); {cpus} CPUs")
    for name in args.configs.split(","):
        config = yaml.safe_load((REPO / "experiments" / "configs" / f"{name}.yaml").read_text())
        workers = int(config["data"]["init_args"].get("num_workers", 0))
        step = step_fn(config)
        step()  # warm-up (allocations, first-call costs)
        times: dict[int, list[float]] = {n: [] for n in counts}
        for _ in range(args.rounds):
            for n in counts:
                torch.set_num_threads(n)
                step()
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[n].append((time.perf_counter() - start) / args.steps)
        ms = {n: 1000 * statistics.median(t) for n, t in times.items()}
        picked = choose_threads(cpus)
        faster = min(ms, key=ms.get)
        verdict = "the faster" if picked == faster else f"slower by {ms[picked] / ms[faster]:.2f}x"
        cells = "  ".join(f"{n} thread{'s' * (n > 1)} {v:7.1f}" for n, v in ms.items())
        print(
            f"  {name:<18} {cells}  | policy {picked} ({verdict}; config: {workers} loader "
            f"worker{'s' * (workers != 1)})"
        )
        results[name] = {"ms": ms, "policy": picked, "faster": faster, "workers": workers}
    print(f"  (load average {os.getloadavg()[0]:.2f} when it ended)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
