"""The modules of ``gan_init.transfer`` import each other without a cycle (the strategies and the
transfer both read ``gan_init.transfer.source``; neither reads the other), and each imports on its
own in a fresh interpreter, whatever is imported first."""

import ast
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


@pytest.mark.slow
def test_each_module_imports_first_in_a_fresh_interpreter():
    """Each module imported first (the order a user's script or a spawned worker may take)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    runs = {
        module: subprocess.Popen(
            [sys.executable, "-c", f"import {module}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for module in transfer_modules()
    }
    failed = {}
    for module, run in runs.items():
        _, err = run.communicate()
        if run.returncode:
            failed[module] = err.strip().splitlines()[-1]
    assert not failed, f"modules that do not import on their own: {failed}"
