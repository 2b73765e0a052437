"""Atomic file writes: a crash or a full disk never leaves half a file where a good one was."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path` by a rename.

    On any error the temporary file is removed and `path` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        _make_readable(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


EXPORT_MARKER = ".export.json"


class ExportTargetError(FileExistsError):
    """An export pointed at a folder that is not an earlier export of the same kind."""


def export_kind(path: Path) -> str | None:
    """The kind written in `path`'s export marker, or None for a folder that is not an export."""
    try:
        return json.loads((path / EXPORT_MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def check_export_target(path: Path, kind: str) -> None:
    """Refuse (ExportTargetError) a `path` that an export of `kind` must not replace: run it
    before long work, so that a bad export_dir stops the run before it starts."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    found = export_kind(path) if path.is_dir() else None
    if found != kind:
        what = f"a {found} export" if found else "not an export folder"
        raise ExportTargetError(f"refusing to write the {kind} export over {path}: it is {what} (an export only "
                                f"replaces an earlier {kind} export); choose another folder")


def atomic_write_dir(path: str | Path, fill: Callable[[Path], None], kind: str) -> None:
    """Build an export folder with `fill(tmp_dir)`, then swap it in for `path` as a whole.

    `path` must be absent, empty, or an earlier export of the same `kind` (its marker file
    says so): anything else, such as a dataset or a run folder, is refused before any work.
    The old folder is moved aside and removed only after the new one is in place, so a crash
    at any point leaves either the old or the new folder complete; concurrent exports to the
    same place take turns (a lock on the parent folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):  # not while another export is halfway through its swap
        check_export_target(path, kind)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        (tmp / EXPORT_MARKER).write_text(json.dumps({"kind": kind}))
        _make_readable(tmp, directory=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with _locked(path.parent):
        try:
            check_export_target(path, kind)  # again: another process may have written meanwhile
            old = None
            if path.exists():
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
                os.replace(path, old)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _locked(directory: Path):
    """An exclusive lock on `directory` (flock on its descriptor: no lock file to leave behind)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_readable(path: Path, directory: bool = False) -> None:
    """mkstemp / mkdtemp create 0600 / 0700; give what a plain open() or mkdir() would (umask)."""
    mask = _umask()
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)
    if directory:
        for child in path.rglob("*"):
            os.chmod(child, (0o777 if child.is_dir() else 0o666) & ~mask)


def save_tensors(tensors: dict, path: str | Path) -> None:
    """A safetensors file of the non-None `tensors`, written atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items() if v is not None}, str(tmp))
