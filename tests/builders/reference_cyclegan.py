"""The reference CycleGAN networks, written exactly as pytorch-CycleGAN-and-pix2pix builds them
(``networks.ResnetGenerator`` / ``NLayerDiscriminator`` with instance norm), so their
``state_dict`` keys are the canonical ones (the table in ``gan_init/transfer/canonical.py``)."""

from __future__ import annotations

import torch
from torch import nn

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
PAD = {2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, d: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            PAD[d](1), CONV[d](dim, dim, 3, bias=True), NORM[d](dim), nn.ReLU(True),
            PAD[d](1), CONV[d](dim, dim, 3, bias=True), NORM[d](dim),
        )  # fmt: skip

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The reference ``ResnetGenerator`` (ngf, n_blocks; 2 downsamplings; 1 channel)."""

    def __init__(self, ngf: int = 8, n_blocks: int = 2, d: int = 2, nc: int = 1) -> None:
        super().__init__()
        model = [PAD[d](3), CONV[d](nc, ngf, 7, bias=True), NORM[d](ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            model += [
                CONV[d](ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                NORM[d](ngf * mult * 2),
                nn.ReLU(True),
            ]
        model += [ResnetBlock(ngf * 4, d) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [
                CONV_T[d](ngf * mult, ngf * mult // 2, 3, 2, padding=1, output_padding=1),
                NORM[d](ngf * mult // 2),
                nn.ReLU(True),
            ]
        model += [PAD[d](3), CONV[d](ngf, nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """The reference ``basic`` PatchGAN with instance norm."""

    def __init__(self, ndf: int = 8, n_layers: int = 3, d: int = 2, nc: int = 1) -> None:
        super().__init__()
        seq = [CONV[d](nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            seq += [
                CONV[d](ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=True),
                NORM[d](ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        seq += [
            CONV[d](ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=True),
            NORM[d](ndf * mult),
            nn.LeakyReLU(0.2, True),
        ]
        seq += [CONV[d](ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def reference_generator(ngf=8, n_blocks=2, d=2, seed=0) -> ResnetGenerator:
    torch.manual_seed(seed)
    net = ResnetGenerator(ngf, n_blocks, d)
    for m in net.modules():  # init normal(0, 0.02) as the reference; random biases to test them
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.normal_(m.bias, 0.0, 0.02)
    return net.eval()
