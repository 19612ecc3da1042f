"""Build a shared artefact once: in a work folder next to its final name, then renamed into place.

The zoo's pretrained models, each sweep's finetuned teachers and the teacher-output cache are built by
whichever process needs them first — several trials, preparations or sweeps at once, any of which may
be killed mid-build. The rules every such artefact follows:

- It is built under a name no reader looks at (``.<name>.partial``) and renamed into place only when
  whole, so the final name always holds a complete artefact or nothing.
- ``complete(final)`` says whether what is at the final name is whole (a marker written last, every
  safetensors file as long as its header says). Something there that is not complete — a damaged copy,
  a half-restored backup — is moved aside and rebuilt, never used.
- Builders take a lock (``.<name>.lock``, ``flock``) while they build, so a second process waits and then
  finds the artefact instead of building it again. The kernel drops the lock of a killed process. On a
  filesystem without locks both build, the first rename wins and the loser discards its copy.
- ``resumable=True`` keeps the work folder of a killed build for the next builder (who holds the lock, so
  nobody else writes there): a builder that checkpoints into it (a teacher's finetuning) continues instead
  of starting over. Otherwise a leftover work folder is cleared first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

Complete = Callable[[Path], bool]


def build_dir_once(
    final: Path, build: Callable[[Path], object], complete: Complete, *, resumable: bool = False
) -> Path:
    """``final`` when ``complete(final)``; else ``build(work_dir)``, then rename the folder to ``final``."""
    if complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _lock(final) as locked:
        if complete(final):  # built by the process we waited for
            return final
        work = final.with_name(f".{final.name}.partial")
        if not locked:  # no lock: a private folder, so two builders never write into one
            work = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
        elif not resumable:
            shutil.rmtree(work, ignore_errors=True)
        try:
            work.mkdir(exist_ok=True)
            build(work)
            _install(work, final, complete)
        finally:
            if not resumable or not locked or complete(final):
                shutil.rmtree(work, ignore_errors=True)
    return final


def build_file_once(final: Path, write: Callable[[Path], object], complete: Complete) -> Path:
    """``final`` when ``complete(final)``; otherwise ``write(tmp_file)`` and move it to ``final``."""
    if complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _lock(final):
        if complete(final):
            return final
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.partial-", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            write(tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; trials may run as other users
            if final.exists() and not complete(final):
                _warn(f"{final} is incomplete or damaged; replaced by a rebuilt copy")
            os.replace(tmp, final)  # atomic: a reader sees the old file or the new one, whole
        finally:
            tmp.unlink(missing_ok=True)
    return final


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole: a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _install(work: Path, final: Path, complete: Complete) -> None:
    try:
        work.rename(final)
        return
    except OSError:
        if complete(final):  # a builder without the lock finished first; its copy is as good as ours
            return
    # Something incomplete holds the name: set it aside (one atomic rename, so no reader ever sees it
    # half-deleted), then take its place.
    _warn(f"{final} is incomplete or damaged; replaced by a rebuilt copy")
    aside = final.with_name(f".{final.name}.damaged-{os.getpid()}-{time.time_ns()}")
    with contextlib.suppress(FileNotFoundError):
        final.rename(aside)
    shutil.rmtree(aside, ignore_errors=True)
    try:
        work.rename(final)
    except OSError:
        if not complete(final):
            raise


@contextlib.contextmanager
def _lock(final: Path) -> Iterator[bool]:
    """Hold ``.<name>.lock`` exclusively; yields False (no lock) where the filesystem has no locks."""
    path = final.with_name(f".{final.name}.lock")
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _warn(message: str) -> None:
    print(f"mmkd: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Completeness checks
# ---------------------------------------------------------------------------------------------------


def safetensors_complete(path: Path) -> bool:
    """Whether ``path`` is a whole safetensors file: its header parses and the file is as long as the
    header's offsets say. Reads the header only, so it is cheap for a file of many GB."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                return False
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return bool(path.stat().st_size == 8 + n + end)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return False


def model_dir_complete(marker: str) -> Complete:
    """A saved model folder: its ``marker`` (written last) and every safetensors file whole."""

    def complete(path: Path) -> bool:
        if not (path / marker).is_file():
            return False
        weights = list(path.glob("*.safetensors"))
        return bool(weights) and all(safetensors_complete(w) for w in weights)

    return complete
