"""The built-in ICBM data in tests: skip a module when the templates were not fetched."""

from __future__ import annotations

import pytest

from gan_init.core.assets import AssetMissingError, asset_path


def require_icbm() -> None:
    """Skip the calling test module unless ``make data`` fetched the ICBM templates."""
    try:
        asset_path("icbm152", "t1.nii")
    except AssetMissingError:  # pragma: no cover - only without `make data`
        pytest.skip("ICBM templates not fetched (make data)", allow_module_level=True)
