"""The modules of ``gan_init.transfer`` import each other without a cycle (the strategies and the
transfer both read ``gan_init.transfer.source``; neither reads the other), and each imports on its
own in a fresh interpreter, whatever is imported first."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "gan_init.transfer"
PACKAGE_DIR = ROOT / "gan_init" / "transfer"


def transfer_modules() -> list[str]:
    """Every module of the package: ``gan_init.transfer`` (its ``__init__``) and submodules."""
    return sorted(
        PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        for path in PACKAGE_DIR.glob("*.py")
    )


def imported_modules(module: str) -> set[str]:
    """Modules of the package that ``module`` imports anywhere in its source: at the top, under
    ``if TYPE_CHECKING``, or inside a function (a cycle hidden in a function is still a cycle)."""
    modules = set(transfer_modules())
    is_package = module == PACKAGE
    path = PACKAGE_DIR / ("__init__.py" if is_package else f"{module.rsplit('.', 1)[1]}.py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package (for __init__) or the module's parent
                parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # "from gan_init.transfer import strategies" imports the submodule
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            # "import gan_init.transfer.strategies" runs the package's __init__, then the module
            while name and name not in modules and name.startswith(PACKAGE + "."):
                name = name.rsplit(".", 1)[0]
            if name in modules and name != module:
                found.add(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, ..., a]``), or None."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_hidden_cycle_and_no_false_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_every_kind_of_import():
    graph = {m: imported_modules(m) for m in transfer_modules()}
    assert {f"{PACKAGE}.strategies", f"{PACKAGE}.source"} <= graph[f"{PACKAGE}.transfer"]
    assert f"{PACKAGE}.checkpoints" in graph[f"{PACKAGE}.canonical"]
    assert f"{PACKAGE}.load" in graph[PACKAGE]  # the package re-exports the loaders


def test_no_module_of_gan_init_transfer_imports_itself_back():
    graph = {m: imported_modules(m) for m in transfer_modules()}
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in {PACKAGE}: {' -> '.join(cycle)}"
    assert f"{PACKAGE}.transfer" not in graph[f"{PACKAGE}.strategies"]
    assert {f"{PACKAGE}.transfer", f"{PACKAGE}.strategies"}.isdisjoint(graph[f"{PACKAGE}.source"])


FIRST_IMPORT = """
import importlib, json, sys
import torch, pytorch_lightning  # third-party imports are loaded once; only ours start afresh
failed = {}
for module in sys.argv[1:]:
    for name in [n for n in sys.modules if n.split(".")[0] in ("gan_init", "data_modules")]:
        del sys.modules[name]
    try:
        importlib.import_module(module)
    except Exception as err:  # an import cycle shows as ImportError/AttributeError here
        failed[module] = f"{type(err).__name__}: {err}"
print(json.dumps(failed))
"""


@pytest.mark.slow
def test_each_module_imports_first_in_a_fresh_interpreter():
    """Each module imported first (the order a user's script or a spawned worker may take): one
    interpreter, with every ``gan_init`` module dropped from ``sys.modules`` before each import,
    so a cycle between our modules fails as it would in a new process."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT, *transfer_modules()],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    failed = json.loads(run.stdout.strip().splitlines()[-1])
    assert not failed, f"modules that do not import on their own: {failed}"


@pytest.mark.slow
def test_the_fresh_import_check_catches_a_cycle(tmp_path):
    """The check above fails on a package whose modules import each other at the top."""
    pkg = tmp_path / "gan_init"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from gan_init.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from gan_init.a import A\nB = 2\n")
    run = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT, "gan_init.a", "gan_init.b"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    failed = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(failed) == {"gan_init.a", "gan_init.b"}
