"""Time each evaluation metric at the evaluation sizes of the CPU configs, and estimate what the
EvaluationCallback costs in a whole run.

    .venv/bin/python benchmarks/metrics_timing.py [--skip-inception] [--train] [--out t.json]

For ``experiments/configs/noise_2d.yaml`` and ``noise_3d.yaml`` the EvaluationCallback block
gives the set sizes (``n_samples``, ``n_real``, ``n_train``), the schedule, the metrics and the
feature settings (``slices_per_axis``, ``feature_bf16``); images are smooth random fields in
[-1, 1] at the data's size (timing does not depend on content). Printed per config, in seconds:
each pixel metric (``swd``, ``msssim``, ``memo`` without features), the Inception features of
one set (``features``; for 3D also with the other slice count, ``features_spa1`` or
``features_spa4``; and in the other precision, ``features_bf16`` or ``features_fp32``), FID, KID
and PR on features. Then the estimated evaluation seconds of one run: SWD at every cheap
evaluation (at each level's side), the noise floor and the final metrics, with the real sets'
features computed (``cold``) or read from the feature cache (``warm``: only the samples are
measured). With ``--train`` the run's training seconds are estimated too (the config's networks,
one Lightning step per level at its batch size, times that level's images, as
``benchmarks/speed.py`` times the top level), and the evaluation share follows: eval seconds /
(train + eval seconds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from gan_init.metrics.evaluate import evaluate_samples, extract_features
from gan_init.metrics.features import FidInceptionV3, SliceFeatures
from gan_init.metrics.swd import NHOOD_SIZE

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


class Flatten(torch.nn.Module):
    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def smooth_images(n: int, spatial: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, *(s // 4 for s in spatial), generator=g)
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    return torch.tanh(
        F.interpolate(x, size=spatial, mode=mode) + 0.1 * torch.randn(n, 1, *spatial, generator=g)
    )


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def callback_args(config: dict, class_name: str) -> dict:
    for cb in config["trainer"]["callbacks"]:
        if cb["class_path"].endswith(class_name):
            return cb.get("init_args") or {}
    raise KeyError(f"no {class_name} in the config's trainer.callbacks")


def run_plan(config: dict) -> dict:
    """What the EvaluationCallback of ``config`` evaluates over a whole run."""
    ev = callback_args(config, "EvaluationCallback")
    sched = callback_args(config, "ProgressiveSchedule")
    total = sum(sched["train_images"]) + sum(sched["fade_images"][1:])
    every = int(ev.get("every_n_images", 50_000))
    costly = int(ev.get("costly_every_n_images", 500_000))
    data = config["data"]["init_args"]
    # Images shown per level (fade-in + train) and the output side there.
    size, n_levels = int(data["size"]), len(sched["train_images"])
    sides = [size // 2 ** (n_levels - 1 - i) for i in range(n_levels)]
    per_level = [f + t for f, t in zip([0, *sched["fade_images"][1:]], sched["train_images"])]
    ends = [sum(per_level[: i + 1]) for i in range(n_levels)]
    cheap_at = [next(i for i, e in enumerate(ends) if k * every <= e) for k in range(1, total // every + 1)] if every > 0 else []  # fmt: skip
    return {
        "levels": [
            {"side": side, "images": n, "batch": b, "cheap_evals": cheap_at.count(i)}
            for i, (side, n, b) in enumerate(zip(sides, per_level, sched["batch_size"]))
        ],
        "dims": int(data["spatial_dims"]),
        "size": int(data["size"]),
        "images": total,
        "n_cheap": total // every if every > 0 else 0,
        "n_costly": total // costly if costly > 0 else 0,
        "n_samples": int(ev.get("n_samples", 256)),
        "n_real": int(ev.get("n_real", 256)),
        "n_train": int(ev.get("n_train", 256)),
        "final": list(ev.get("final_metrics") or []),
        "floor": list(ev.get("noise_floor", ["swd"])),
        "slices_per_axis": int(ev.get("slices_per_axis", 1)),
        "bf16": bool(ev.get("feature_bf16", False)),
    }


def train_seconds(config: dict, plan: dict, steps: int = 3) -> float:
    """Training seconds of the run: per level, the median Lightning step (the config's
    networks) over ``steps`` batches, times the level's batches."""
    import statistics
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from speed import lightning_block  # noqa: E402  (benchmarks/ is not a package)

    from gan_init.models import ProgressiveGAN
    from gan_init.networks import BackboneSpec, NoiseGenerator, ProgressiveDiscriminator

    model_args = config["model"]["init_args"]
    g_args = dict(model_args["generator"]["init_args"])
    backbone = BackboneSpec(**g_args.pop("backbone"))
    d_args = model_args["discriminator"]["init_args"]
    torch.manual_seed(0)
    model = ProgressiveGAN(
        NoiseGenerator(**g_args, backbone=backbone), ProgressiveDiscriminator(**d_args)
    )
    total = 0.0
    for level, info in enumerate(plan["levels"]):
        model.set_progress(level, 1.0)
        shape = (info["batch"], 1, *(plan["size"],) * plan["dims"])
        batches = [{"image": torch.rand(shape) * 2 - 1} for _ in range(steps + 1)]
        step = statistics.median(lightning_block(model, batches, steps, "32-true", None))
        info["train_step_seconds"] = step
        total += step * info["images"] / info["batch"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-inception", action="store_true")
    parser.add_argument("--configs", nargs="+", default=["noise_2d", "noise_3d"])
    parser.add_argument("--train", action="store_true", help="estimate training time too")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for name in args.configs:
        config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        plan = run_plan(config)
        spatial = (plan["size"],) * plan["dims"]
        n = plan["n_samples"]
        fake = smooth_images(n, spatial, 1)
        real = smooth_images(plan["n_real"], spatial, 2)
        train = smooth_images(plan["n_train"], spatial, 3)
        row: dict[str, float] = {}
        for metric in ("swd", "msssim", "memo"):
            row[metric], _ = timed(evaluate_samples, fake, real, train, [metric], feature=None)
        # The cheap evaluations: SWD at each level's side (skipped below its 7 px neighbourhood).
        cheap = 0.0
        for info in plan["levels"]:
            if info["cheap_evals"] and info["side"] >= NHOOD_SIZE:
                small = [F.interpolate(x, size=(info["side"],) * plan["dims"], mode="area") for x in (fake, real)]  # fmt: skip
                row[f"swd_{info['side']}"], _ = timed(evaluate_samples, *small, None, ["swd"], feature=None)  # fmt: skip
                cheap += info["cheap_evals"] * row[f"swd_{info['side']}"]
        if not args.skip_inception:
            variants = {"features": (plan["slices_per_axis"], plan["bf16"])}
            variants["features_" + ("fp32" if plan["bf16"] else "bf16")] = (
                plan["slices_per_axis"],
                not plan["bf16"],
            )
            if plan["dims"] == 3:  # the other slice count: 4 per axis, or the central one
                other = 1 if plan["slices_per_axis"] != 1 else 4
                variants[f"features_spa{other}"] = (other, plan["bf16"])
            feats = None
            for key, (slices, bf16) in variants.items():
                net = FidInceptionV3(bf16=bf16)
                if plan["dims"] == 3:
                    net = SliceFeatures(net, slices_per_axis=slices)
                extract_features(net, fake[:2])  # warm-up
                row[key], out = timed(extract_features, net, fake)
                feats = out if key == "features" else feats
            # FID, KID and PR on the features (as the callback runs them, features cached):
            # features pass as [N, F, 1, 1] "images" through a flattening extractor.
            flat = Flatten(feats.shape[1])
            for metric in ("fid", "kid", "pr"):
                row[metric], _ = timed(
                    evaluate_samples,
                    feats[..., None, None],
                    feats.flip(0)[..., None, None] + 0.1,
                    metrics=[metric],
                    feature=flat,
                )
        per_image = row.get("features", 0.0) / n
        on_features = sum(row.get(m, 0.0) for m in ("fid", "kid", "pr"))
        pixel_final = sum(row[m] for m in ("swd", "msssim", "memo") if m in plan["final"])
        floor_pixel = row["swd"] if "swd" in plan["floor"] else 0.0
        floor_feats = any(m in ("fid", "kid", "pr") for m in plan["floor"])
        final_feats = any(m in ("fid", "kid", "pr", "memo") for m in plan["final"])
        sets_cold = (2 if floor_feats else 0) + (
            1 + (0 if floor_feats else 1) if final_feats else 0
        )
        sets_cold += 1 if "memo" in plan["final"] and final_feats else 0
        base = cheap + floor_pixel + pixel_final + on_features
        estimate = {
            "cheap_evaluations": plan["n_cheap"],
            "eval_seconds_cold": base + sets_cold * n * per_image,
            "eval_seconds_warm": base + (n * per_image if final_feats else 0.0),
        }
        if args.train:
            estimate["train_seconds"] = train_seconds(config, plan)
            for key in ("cold", "warm"):
                spent = estimate[f"eval_seconds_{key}"]
                estimate[f"eval_share_{key}"] = spent / (spent + estimate["train_seconds"])
        results[name] = {"plan": plan, "seconds": row, "estimate": estimate}
        print(name, json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
        print(name, "estimate", json.dumps({k: round(v, 1) for k, v in estimate.items()}))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
