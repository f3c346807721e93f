"""The shape of the code itself: no function too long to read at once, and no reference to a
file that is not in the repository (the design is ``docs/architecture.md``)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80
PACKAGES = ("gan_init", "data_modules")
# Documents and folders that live beside the repository, not in it: a reader of the repository
# cannot open them. The design is in docs/architecture.md.
OUTSIDE_REFERENCES = ("DESIGN.md", "STYLE.md", "COMMON.md", "../shared", "/work/", "interop/")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".json", ".sh"}
TEXT_NAMES = {"Makefile", "run"}  # run: .ci/run
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "runs", "wandb"}
SKIP_DIRS |= {"lightning_logs", ".cache"}


def long_functions(root: Path, packages: tuple[str, ...], limit: int) -> list[str]:
    """``file:function:length`` of every function or method longer than ``limit`` lines, from its
    ``def`` line to its last line (signature and docstring included, decorators not)."""
    found = []

    def visit(node: ast.AST, path: Path, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = child.end_lineno - child.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root)}:{name}:{length}")
            visit(child, path, f"{name}." if name != prefix else prefix)

    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            visit(ast.parse(path.read_text(), filename=str(path)), path, "")
    return found


def text_files(root: Path) -> list[Path]:
    """The repository's text files (sources, docs, configs), without caches and run outputs."""
    out = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p in SKIP_DIRS or p.endswith(".egg-info") for p in parts) or not path.is_file():
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            out.append(path)
    return out


def outside_references(root: Path, strings: tuple[str, ...], skip: Path) -> list[str]:
    """``file:line: string`` of every line of a text file that names a file outside the repo."""
    found = []
    for path in text_files(root):
        if path == skip:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            found += [f"{path.relative_to(root)}:{number}: {s}" for s in strings if s in line]
    return found


def test_no_function_over_80_lines():
    found = long_functions(ROOT, PACKAGES, MAX_FUNCTION_LINES)
    assert not found, (
        f"functions over {MAX_FUNCTION_LINES} lines (file:function:length): {', '.join(found)}; "
        "split each where it mixes concerns"
    )


def test_long_function_check_finds_one(tmp_path):
    # The check itself: a function or method of 81 lines is named with its file, class and
    # length; one of 80 is not.
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text("def long():\n" + "    x = 1\n" * 80)
    (package / "n.py").write_text("class A:\n    def ok(self):\n" + "        x = 1\n" * 79)
    (package / "o.py").write_text("class B:\n    def f(self):\n" + "        x = 1\n" * 80)
    assert long_functions(tmp_path, ("pkg",), 80) == ["pkg/m.py:long:81", "pkg/o.py:B.f:81"]


def test_no_reference_to_files_outside_the_repository():
    found = outside_references(ROOT, OUTSIDE_REFERENCES, skip=Path(__file__).resolve())
    assert not found, (
        f"references to files outside the repository: {'; '.join(found)}; "
        "point to docs/architecture.md (or the module that holds the concept) instead"
    )


def test_outside_reference_check_finds_one(tmp_path):
    (tmp_path / "a.py").write_text('"""See DESIGN.md."""\n')
    (tmp_path / "b.yaml").write_text("# fine\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "c.py").write_text("# DESIGN.md\n")
    assert outside_references(tmp_path, ("DESIGN.md",), skip=tmp_path / "x") == [
        "a.py:1: DESIGN.md"
    ]
