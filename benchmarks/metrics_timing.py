"""Time each evaluation metric on 256 2D (64^2) and 64 3D (32^3) samples against as many real ones.

    .venv/bin/python benchmarks/metrics_timing.py [--skip-inception] [--out timings.json]

Images are smooth random fields in [-1, 1] (timing does not depend on content). "features" is
the FID Inception on each set (the evaluation callback caches the real set's); FID, KID and PR
are then timed on the features.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from gan_init.metrics.evaluate import evaluate_samples, extract_features
from gan_init.metrics.features import load_feature_extractor


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-inception", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for name, n, spatial in (("2d_64", 256, (64, 64)), ("3d_32", 64, (32, 32, 32))):
        fake, real, train = (smooth_images(n, spatial, s) for s in (1, 2, 3))
        row: dict[str, float] = {}
        for metric in ("swd", "msssim", "memo"):
            row[metric], _ = timed(evaluate_samples, fake, real, train, [metric], feature=None)
        if not args.skip_inception:
            extractor = load_feature_extractor("inception", len(spatial))
            extract_features(extractor, fake[:2])  # warm-up
            row["features_fake"], feats = timed(extract_features, extractor, fake)
            row["features_real"], real_feats = timed(extract_features, extractor, real)
            # FID, KID and PR on the features (as the callback runs them, features cached):
            # features pass as [N, F, 1, 1] "images" through a flattening extractor.
            flat = Flatten(feats.shape[1])
            for metric in ("fid", "kid", "pr"):
                row[metric], _ = timed(
                    evaluate_samples,
                    feats[..., None, None],
                    real_feats[..., None, None],
                    metrics=[metric],
                    feature=flat,
                )
        results[name] = row
        print(name, json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
