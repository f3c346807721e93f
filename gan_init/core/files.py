"""Files a run writes: whole or not at all (write to a temporary file, then rename), so a killed
process never leaves half a summary, metrics file or config behind; and the CSV metrics of runs
that resumed, kept over every attempt."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def ordinary_mode(path: str | Path) -> None:
    """Give a ``mkstemp`` file (0600) the mode any new file gets (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        ordinary_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class CorruptFileError(ValueError):
    """A state file (sweep state, run summary, ...) that is not what this project wrote."""


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing. A file that is not a JSON object
    (truncated by a full disk, edited by hand) raises ``CorruptFileError`` naming it: it is never
    read as "nothing there", which would let the caller overwrite what it held."""
    path = Path(path)
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: expected a JSON object, found a {type(data).__name__}")
    return data


def set_aside(path: str | Path) -> Path:
    """Rename a damaged ``path`` to ``<name>.corrupt-<timestamp>`` (kept for inspection)."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    k = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{k}")
        k += 1
    return path.rename(target)


def read_state(
    path: str | Path,
    *,
    check: Callable[[dict[str, Any]], str | None],
    recover: str,
) -> dict[str, Any] | None:
    """A state file this project writes and later reads back (None if missing). A corrupt file,
    or one ``check`` finds wrong-shaped (it returns what is wrong), is set aside as
    ``<name>.corrupt-<timestamp>`` and ``CorruptFileError`` says where it went and ``recover``
    (how the user goes on). The caller never overwrites the damaged original."""
    path = Path(path)
    try:
        data = read_json(path)
        problem = None if data is None else check(data)
    except CorruptFileError as err:
        problem, data = str(err).removeprefix(f"{path}: "), None
    if problem is None:
        return data
    kept = set_aside(path)
    raise CorruptFileError(f"{path}: {problem}; the file was kept as {kept.name}. {recover}")


# Lightning's CSVLogger deletes an existing metrics.csv when a run resumes into its folder; the
# CLI sets it aside first under this name (k = 1, 2, ... per resume).
BEFORE_RESUME_CSV = "metrics.before-resume-{}.csv"


def keep_csv_before_resume(log_dir: str | Path) -> Path | None:
    """Rename ``log_dir/metrics.csv`` to the next free ``metrics.before-resume-<k>.csv``."""
    current = Path(log_dir) / "metrics.csv"
    if not current.is_file():
        return None
    k = 1
    while (target := current.with_name(BEFORE_RESUME_CSV.format(k))).exists():
        k += 1
    return current.rename(target)


def csv_attempts(run_dir: str | Path) -> list[Path]:
    """Every CSV metrics file under ``run_dir``, oldest attempt first, ``metrics.csv`` last."""
    run_dir = Path(run_dir)

    def attempt(path: Path) -> int:
        return 1 << 30 if path.name == "metrics.csv" else int(path.stem.rsplit("-", 1)[-1])

    kept = run_dir.rglob(BEFORE_RESUME_CSV.format("*"))
    return sorted([*kept, *run_dir.rglob("metrics.csv")], key=attempt)
