"""Does a cheaper feature extraction change FID/KID beyond their own seed-to-seed noise?

    .venv/bin/python benchmarks/studies/feature_noise.py [--seeds 8] [--dims 3 2]
        [--features feats.pt] [--out feature_noise.json]

``--features`` keeps the extracted features (the slow part) for a second analysis. FID is
computed exactly from the n x n cross-products (``gan_init.metrics.frechet``, checked against
torchmetrics once per dimension), since torchmetrics solves a 2048 x 2048 eigenproblem per call.

Real-vs-real: a pool of real images of the configs' data (2D 64^2: 256, 3D 32^3: 64 volumes,
val + test) is split at random into two disjoint halves of the configs' evaluation size (2D 128,
3D 32) once per seed; FID and KID between the halves are computed from the same per-image
features under each variant:

- 3D, 2.5D slices: ``spa4`` (4 slices per axis over the central 60%, the old default), ``spa2``,
  ``spa1`` (the central slice of each axis), ``spa1_bf16`` (central slices, Inception in bf16).
- 2D: ``fp32`` and ``bf16`` (Inception in bf16 autocast).

Besides real-vs-real, each variant measures real against a degraded real set (Gaussian noise of
std 0.1 added), to check that a variant still separates what the reference separates. Printed:
per variant the mean and std over seeds, and the mean paired difference to the reference with its
std. A variant keeps the metric when its difference is small against the reference's std.
A study (tens of minutes on 2 cores), so outside ``make bench``, which runs ``benchmarks/*.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from data_modules.icbm import IcbmDataModule
from gan_init.metrics.features import FidInceptionV3, PrecomputedFeatures, SliceFeatures
from gan_init.metrics.frechet import frechet_distance


def fid_torchmetrics(a: torch.Tensor, b: torch.Tensor) -> float:
    fid = FrechetInceptionDistance(feature=PrecomputedFeatures(a.shape[1]))
    fid.update(a, real=True)
    fid.update(b, real=False)
    return float(fid.compute())


def fid_kid(a: torch.Tensor, b: torch.Tensor, seed: int) -> tuple[float, float]:
    identity = PrecomputedFeatures(a.shape[1])
    kid = KernelInceptionDistance(feature=identity, subset_size=min(len(a), len(b)) // 2)
    kid.update(a, real=True)
    kid.update(b, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, _ = kid.compute()
    return float(frechet_distance(a, b)), float(kid_mean)


def per_slice_features(net, volumes: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """``[N, 1, D, H, W] -> [N, 3, len(idx), F]``: features of slices ``idx`` along each axis."""
    out = []
    for axis in (2, 3, 4):
        picked = volumes.index_select(axis, torch.tensor(idx)).movedim(axis, 1)
        feats = torch.cat([net(c) for c in picked.reshape(-1, *picked.shape[2:]).split(64)])
        out.append(feats.reshape(volumes.shape[0], len(idx), -1))
    return torch.stack(out, dim=1).double()


def bf16(net):
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x)

    return run


def summarize(values: dict[str, list[float]], ref: str) -> dict[str, dict[str, float]]:
    out = {}
    for name, vals in values.items():
        diff = [v - r for v, r in zip(vals, values[ref])]
        out[name] = {
            "mean": statistics.mean(vals),
            "std": statistics.stdev(vals),
            "diff_mean": statistics.mean(diff),
            "diff_std": statistics.stdev(diff) if name != ref else 0.0,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--dims", nargs="+", type=int, default=[3, 2])
    parser.add_argument("--features", default=None, help="save/load the features here (.pt)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = FidInceptionV3()
    results = {}
    stored = torch.load(args.features) if args.features and Path(args.features).is_file() else {}
    sizes = {3: (32, 32), 2: (64, 128)}  # data side, evaluation set size (the configs')
    for dims in args.dims:
        size, n_half = sizes[dims]
        dm = IcbmDataModule(spatial_dims=dims, size=size, mode="noise")
        pool = torch.cat([dm.real_images(n_half, "val"), dm.real_images(n_half, "test")])
        noisy = (pool + 0.1 * torch.randn_like(pool)).clamp(-1, 1)
        start = time.perf_counter()
        feats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        ref = "spa4" if dims == 3 else "fp32"
        if f"{dims}d" in stored:
            feats = stored[f"{dims}d"]
        elif dims == 3:
            spa4 = SliceFeatures(net, slices_per_axis=4).slice_indices(size)
            spa2 = SliceFeatures(net, slices_per_axis=2).slice_indices(size)
            centre = SliceFeatures(net, slices_per_axis=1).slice_indices(size)
            idx = sorted(set(spa4 + spa2 + centre))
            both = [per_slice_features(net, x, idx) for x in (pool, noisy)]

            def pick(sl, both=both, idx=idx):
                cols = [idx.index(i) for i in sl]
                return tuple(f[:, :, cols].mean(dim=(1, 2)) for f in both)

            feats = {"spa4": pick(spa4), "spa2": pick(spa2), "spa1": pick(centre)}
            half = [per_slice_features(bf16(net), x, centre) for x in (pool, noisy)]
            feats["spa1_bf16"] = tuple(f.mean(dim=(1, 2)) for f in half)
        else:
            for name, fn in (("fp32", net), ("bf16", bf16(net))):
                feats[name] = tuple(
                    torch.cat([fn(c) for c in x.split(64)]).double() for x in (pool, noisy)
                )
        stored[f"{dims}d"] = feats
        if args.features:
            torch.save(stored, args.features)
        print(f"{dims}D features: {time.perf_counter() - start:.0f} s", flush=True)
        ref_feats = feats[ref][0]
        exact = fid_torchmetrics(ref_feats[:n_half], ref_feats[n_half : 2 * n_half])
        fast = float(frechet_distance(ref_feats[:n_half], ref_feats[n_half : 2 * n_half]))
        print(f"{dims}D FID check: torchmetrics {exact:.4f}, low-rank {fast:.4f}", flush=True)
        table: dict[str, dict[str, list[float]]] = {}
        for seed in range(args.seeds):
            perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
            a, b = perm[:n_half], perm[n_half : 2 * n_half]
            for name, (f_real, f_noisy) in feats.items():
                for kind, other in (("real", f_real), ("noisy", f_noisy)):
                    fid, kid = fid_kid(f_real[a], other[b], seed)
                    table.setdefault(f"fid_{kind}", {}).setdefault(name, []).append(fid)
                    table.setdefault(f"kid_{kind}", {}).setdefault(name, []).append(kid)
        summary = {metric: summarize(vals, ref) for metric, vals in table.items()}
        results[f"{dims}d"] = summary
        for metric, rows in summary.items():
            for name, s in rows.items():
                print(
                    f"{dims}D {metric:10s} {name:10s} {s['mean']:9.4f} +- {s['std']:8.4f}  "
                    f"diff {s['diff_mean']:+9.4f} +- {s['diff_std']:8.4f}",
                    flush=True,
                )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
