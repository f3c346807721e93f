"""Dimension -> op tables: the one place that picks torch's 1D, 2D or 3D variant of an op from
the number of spatial dims, so code written once for 2D and 3D never branches on it. Layers come
from MONAI's factories the same way (``Norm[Norm.INSTANCE, spatial_dims]``, in ``layers.py``).
Pure torch (no MONAI): the data modules import it too."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
# ``F.interpolate``'s (multi)linear mode.
LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}
# Channels-last memory format of ``[B, C, *S]`` tensors: NHWC (2D) or NDHWC (3D).
CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}
