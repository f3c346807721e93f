"""Generator backbone: parameters and forward+backward time, against a plain-PyTorch baseline.

The baseline is the reference CycleGAN ``resnet`` generator written with torch.nn layers only
(``nn.Sequential`` of Conv/ConvTranspose/InstanceNorm, as the canonical implementation builds
it). The ratio ours/baseline, measured in the same run, shows what the dimension-generic layers
(run-time weight scaling, explicit padding) cost. Prints one line per case.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from gan_init.networks import BackboneSpec, CycleGANGenerator


def reference_resnet(spec: BackboneSpec) -> nn.Module:
    d = spec.spatial_dims
    conv = {2: nn.Conv2d, 3: nn.Conv3d}[d]
    convt = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[d]
    norm = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[d]
    pad = {2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}[d]
    w = spec.width

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                pad(1), conv(c, c, 3), norm(c), nn.ReLU(True), pad(1), conv(c, c, 3), norm(c)
            )

        def forward(self, x):
            return x + self.body(x)

    layers = [pad(3), conv(spec.in_channels, w(0), 7), norm(w(0)), nn.ReLU(True)]
    for i in range(spec.n_down):
        layers += [conv(w(i), w(i + 1), 3, 2, 1), norm(w(i + 1)), nn.ReLU(True)]
    layers += [Block(spec.bottleneck_width) for _ in range(spec.n_blocks)]
    for i in range(spec.n_down, 0, -1):
        layers += [convt(w(i), w(i - 1), 3, 2, 1, output_padding=1), norm(w(i - 1)), nn.ReLU(True)]
    layers += [pad(3), conv(w(0), spec.out_channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def time_fwd_bwd(net: nn.Module, x: torch.Tensor, repeats: int) -> float:
    for _ in range(2):  # warm-up
        net(x).mean().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        net.zero_grad(set_to_none=True)
        net(x).mean().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = [
        ("2D default (64^2)", BackboneSpec(spatial_dims=2), 64),
        ("3D base_width 16 (32^3)", BackboneSpec(spatial_dims=3, base_width=16), 32),
        ("3D default (32^3)", BackboneSpec(spatial_dims=3), 32),
    ]
    for name, spec, size in cases:
        ours, ref = CycleGANGenerator(spec), reference_resnet(spec)
        n_ours = sum(p.numel() for p in ours.parameters())
        n_ref = sum(p.numel() for p in ref.parameters())
        x = torch.randn(args.batch, 1, *(size,) * spec.spatial_dims)
        t_ref = time_fwd_bwd(ref, x, args.repeats)
        t_ours = time_fwd_bwd(ours, x, args.repeats)
        print(
            f"backbone {name}: {n_ours:,} params (baseline {n_ref:,}); fwd+bwd batch {args.batch}: "
            f"{t_ours:.3f} s, baseline {t_ref:.3f} s, ratio ours/baseline {t_ours / t_ref:.2f}"
        )


if __name__ == "__main__":
    main()
