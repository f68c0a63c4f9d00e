"""Build outputs under a temporary name beside the destination, then rename them into place.

A reader of DST therefore sees either nothing, the previous complete pack, or the new complete
pack -- never a partial one. The temporary folder has a fixed, recognisable name
(``.<name>.packer-partial``) so that a run killed with SIGKILL leaves exactly one clearly named
leftover, which the next run removes once no live process owns it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import types
from pathlib import Path
from typing import Self

from packer.errors import OutputError
from packer.format.manifest import MANIFEST_NAME

_OWNER = ".packer-owner"


def partial_path(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.packer-partial"


def old_path(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.packer-old"


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``), so that a
    replaced DST is never missing, not even for an instant. False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # a filesystem or kernel without it
    raise OSError(err, os.strerror(err), str(b))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_destination(dst: Path, *, force: bool, marker: str = MANIFEST_NAME) -> None:
    """Refuse to touch an existing DST unless --force, and never replace something that is not
    what we write (a folder holding ``marker``: a pack's manifest, a part's ``part.json``)."""
    if not (dst.exists() or dst.is_symlink()):
        return
    if not force:
        raise OutputError(
            f"{dst}: already exists; pass --force to replace it, or choose another DST"
        )
    if dst.is_symlink() or not dst.is_dir():
        raise OutputError(
            f"{dst}: exists and is not a folder; remove it yourself or choose another DST"
        )
    if not (dst / marker).is_file() and any(dst.iterdir()):
        what = "a pack" if marker == MANIFEST_NAME else "a part"
        raise OutputError(
            f"{dst}: exists and is not {what} (no {marker}); --force only replaces {what}s, "
            "so remove it yourself or choose another DST"
        )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staging:
    """Context manager owning ``.<name>.packer-partial`` until :meth:`commit` renames it to DST.

    Args:
        dst: the final destination folder.
        force: replace an existing pack at DST (only once the new one is complete).
        keep_partial: reuse the leftover of an interrupted run (``--resume``) instead of removing it.
        keep_on_error: with ``keep_partial``, keep the folder after any error, not only Ctrl-C
            (``pack stage`` continues every file it had begun).
        marker: the file that marks a finished DST (what ``--force`` may replace).
    """

    def __init__(
        self,
        dst: Path,
        *,
        force: bool,
        keep_partial: bool = False,
        marker: str = MANIFEST_NAME,
        keep_on_error: bool = False,
    ) -> None:
        self.dst = dst
        self.keep_on_error = keep_on_error
        self.marker = marker
        self.force = force
        self.keep_partial = keep_partial
        self.path = partial_path(dst)
        self._committed = False

    def __enter__(self) -> Self:
        check_destination(self.dst, force=self.force, marker=self.marker)
        try:
            self.dst.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.dst.parent}: cannot create ({exc.strerror})") from None
        self._clear_stale()
        try:
            self.path.mkdir(exist_ok=self.keep_partial)
            (self.path / _OWNER).write_text(str(os.getpid()))
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot create the staging folder ({exc.strerror}); check permissions"
            ) from None
        return self

    def _clear_stale(self) -> None:
        old = old_path(self.dst)
        if old.exists() and not self.dst.exists():  # killed mid-swap (no RENAME_EXCHANGE)
            os.rename(old, self.dst)
        if not self.path.exists():
            return
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.path / _OWNER).read_text())
            if pid != os.getpid() and _pid_alive(pid):
                raise OutputError(
                    f"{self.dst}: another `pack convert` (pid {pid}) is writing it; wait for it to finish"
                )
        if not self.keep_partial:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> None:
        """Make the staged pack durable and visible as DST, replacing an old pack if forced."""
        (self.path / _OWNER).unlink(missing_ok=True)
        fsync_dir(self.path)
        old: Path | None = None
        if self.dst.exists():
            # may have appeared meanwhile
            check_destination(self.dst, force=self.force, marker=self.marker)
            if exchange(self.path, self.dst):  # the staging name now holds the old pack
                fsync_dir(self.dst.parent)
                self._committed = True
                shutil.rmtree(self.path, ignore_errors=True)
                return
            old = old_path(self.dst)
            shutil.rmtree(old, ignore_errors=True)
            os.rename(self.dst, old)  # a kill here leaves old: the next run puts it back
        os.rename(self.path, self.dst)
        fsync_dir(self.dst.parent)
        self._committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if self._committed:
            return
        if (
            self.keep_partial
            and exc_type is not None
            and (self.keep_on_error or issubclass(exc_type, KeyboardInterrupt))
        ):
            (self.path / _OWNER).unlink(missing_ok=True)  # interrupted: leave it for --resume
            return
        shutil.rmtree(self.path, ignore_errors=True)
