"""The import rules of docs/architecture.md ("Import rules"): on the source (every import
statement, also inside functions) and on what importing a package really loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# data_modules never imports gan_init.models, gan_init.callbacks or gan_init.transfer: the data
# is chosen and changed without touching what trains on it.
DATA_MODULES_MUST_NOT_IMPORT = ("gan_init.models", "gan_init.callbacks", "gan_init.transfer")


def imported_modules(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``path``: ``from a import b`` gives ``a.b`` too (b
    may be a module); relative imports are resolved against ``path``'s package under ``root``."""
    package = list(path.relative_to(root).parts[:-1])  # the folder, for __init__.py too
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, module))
            found += [(node.lineno, ".".join(filter(None, (module, a.name)))) for a in node.names]
    return found


def forbidden_imports(folder: Path, forbidden: tuple[str, ...], root: Path = REPO) -> list[str]:
    """``file:line imports module`` for each import of a ``forbidden`` module (or below it)."""
    bad = []
    for path in sorted(folder.rglob("*.py")):
        for line, module in imported_modules(path, root):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return sorted(set(bad))


def test_the_checker_finds_every_form_of_import(tmp_path):
    package = tmp_path / "data_modules"
    package.mkdir()
    (package / "bad.py").write_text(
        "import gan_init.transfer.load as load\n"
        "from gan_init import models\n"
        "from gan_init.core.visualize import upright  # allowed\n"
        "def f():\n"
        "    from gan_init.callbacks.ema import EMA\n"
    )
    (package / "sub").mkdir()
    (package / "sub" / "rel.py").write_text(
        "from ... import gan_init\nfrom ...gan_init import transfer\n"
    )
    assert forbidden_imports(package, DATA_MODULES_MUST_NOT_IMPORT, tmp_path) == [
        "data_modules/bad.py:1 imports gan_init.transfer.load",
        "data_modules/bad.py:2 imports gan_init.models",
        "data_modules/bad.py:5 imports gan_init.callbacks.ema",
        "data_modules/bad.py:5 imports gan_init.callbacks.ema.EMA",
        "data_modules/sub/rel.py:2 imports gan_init.transfer",
    ]


def test_data_modules_never_import_models_callbacks_or_transfer():
    bad = forbidden_imports(REPO / "data_modules", DATA_MODULES_MUST_NOT_IMPORT)
    assert not bad, (
        "data_modules must not import gan_init.models, gan_init.callbacks or gan_init.transfer "
        f"(docs/architecture.md, Import rules): {bad}; move what both need into data_modules or "
        "gan_init.core.visualize / gan_init.core.files"
    )


@pytest.mark.slow  # a fresh interpreter importing torch, TorchIO and Lightning
def test_importing_data_modules_loads_no_model_callback_or_transfer_code():
    """Also through a module data_modules may import (``gan_init.core.visualize`` importing a model
    would load it all the same)."""
    code = (
        "import sys, data_modules; "
        f"bad = [m for m in sys.modules if m.startswith({DATA_MODULES_MUST_NOT_IMPORT!r})]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_networks_do_not_import_lightning():
    code = (
        "import sys, gan_init.networks, gan_init.nn; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning', 'wandb')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
