"""``pack verify``: every file against the manifest's sha256, every sample's CRC-32, and with
``deep`` every image decoded. Damage is reported, never raised, and never parsed: a damaged data
file of a backend without raw ranges is not handed to its native library (it may crash on it)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from packer._util.files import sha256_file
from packer.backends.registry import make_backend
from packer.errors import PackerError, PackError, UsageError
from packer.format.index import INDEX_FILES, Index
from packer.format.keys import safe_relative
from packer.format.manifest import Manifest
from packer.images.checks import DEFAULT_MAX_PIXELS, full_check, quiet_decoder
from packer.progress import NoProgress, Progress
from packer.read.pack import Pack
from packer.storage.store import is_url, local_path


@dataclass(frozen=True)
class Problem:
    """One thing ``verify`` found wrong. ``where`` names the file or the sample."""

    kind: str
    where: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass
class VerifyReport:
    path: Path
    deep: bool
    samples_checked: int = 0
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_not_listed: int = 0
    #: what decoders said about samples that did decode (EXIF oddities, libtiff tags...)
    decoder_warnings: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    url: str | None = None  # a pack verified at a URL (``path`` is the local copy checked)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.url or str(self.path),
            "ok": self.ok,
            "deep": self.deep,
            "samples_checked": self.samples_checked,
            "files_checked": self.files_checked,
            "problems": [p.to_dict() for p in self.problems],
            "problems_not_listed": self.problems_not_listed,
            "decoder_warnings": [p.to_dict() for p in self.decoder_warnings],
            "seconds": round(self.seconds, 3),
        }


MAX_LISTED_PROBLEMS = 1000


def verify_pack(
    path: str | os.PathLike[str],
    *,
    deep: bool = False,
    max_pixels: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Check every data and index file against the manifest's sha256, and every sample's CRC-32.

    ``deep`` also decodes every image, with the pixel limit the pack was made with (or
    ``max_pixels``); decoder warnings are collected per sample, never printed. ``workers``
    processes share the sample checks; the report is the same for any number. Damage is reported,
    not raised: the report names each bad file and sample. Only a path that is not a pack at all
    raises :class:`PackError`.
    """
    if workers < 1:
        raise UsageError(f"--workers {workers} must be at least 1")
    if is_url(path):
        from packer.check.remote import verify_url

        return verify_url(
            os.fspath(path), deep=deep, max_pixels=max_pixels, workers=workers,
            progress=progress, storage_options=storage_options,
        )  # fmt: skip
    root = local_path(path)
    progress = progress or NoProgress()
    started = time.perf_counter()
    report = VerifyReport(root, deep)

    def problem(kind: str, where: str, message: str) -> None:
        if len(report.problems) < MAX_LISTED_PROBLEMS:
            report.problems.append(Problem(kind, where, message))
        else:
            report.problems_not_listed += 1

    if not (root / "manifest.json").exists():  # not damage: this folder was never a pack
        Manifest.read(root)  # raises the same one-line error as `pack inspect`
    try:
        manifest = Manifest.read(root)
        backend = make_backend(manifest.backend_name, manifest.options)
    except PackerError as exc:
        problem("manifest", str(root / "manifest.json"), str(exc))
        return report

    def check_files(names: list[str]) -> None:
        for name in names:
            check_file(name)

    def check_file(name: str) -> None:
        expected = manifest.index_sha256.get(name)
        try:
            file = root / safe_relative(name)
        except PackError as exc:  # a hand-edited manifest must not make verify read outside
            problem("manifest", str(root / "manifest.json"), str(exc))
            return
        report.files_checked += 1
        if not file.is_file():
            problem("index", str(file), "missing")
        elif expected is None:
            problem("index", str(file), "no checksum in the manifest")
        elif sha256_file(file) != expected:
            problem(
                "index", str(file), "sha256 does not match the manifest (file changed or damaged)"
            )

    check_files(INDEX_FILES)
    index = Index(root, manifest)
    try:
        index.load_all()
    except PackError as exc:
        problem("index", str(root / "index"), str(exc))
        return report
    # Loader indexes (wids.json, DALI .idx...): the ones the backend writes for this index, and
    # any other the manifest records; each must be there, recorded, and what the index implies.
    try:
        derived = backend.sidecar_files(manifest, index)
    except Exception as exc:  # damaged index values (checked per sample below) or a plugin's bug
        problem("index", str(root / "index"), f"loader indexes cannot be derived from it ({exc!r})")
        derived = {}
    check_files(sorted((set(manifest.index_sha256) - set(INDEX_FILES)) | set(derived)))
    for name, data in sorted(derived.items()):
        file = root / name
        recorded = manifest.index_sha256.get(name)
        if file.is_file() and recorded is not None and hashlib.sha256(data).hexdigest() != recorded:
            problem("index", str(file), "does not match the pack index; re-create the pack")

    bad_files: set[int] = set()
    for file_id, data_file in enumerate(manifest.data_files):
        file = root / data_file.name
        report.files_checked += 1
        if not file.is_file():
            problem("data", str(file), "missing")
            bad_files.add(file_id)
            continue
        size = file.stat().st_size
        if size != data_file.bytes:
            problem(
                "data",
                str(file),
                f"size {size} bytes, manifest says {data_file.bytes} (truncated or appended)",
            )
            bad_files.add(file_id)
        elif sha256_file(file) != data_file.sha256:
            problem("data", str(file), "sha256 does not match the manifest (damaged bytes)")
            bad_files.add(file_id)

    limit = max_pixels or _recorded_max_pixels(manifest)
    with Pack(root) as pack:
        n = len(pack)
        file_ids = pack.index.locations[:, 0]
        if bad_files and not pack.backend.raw_ranges:
            # Never hand a damaged file to a native parser (LMDB, HDF5, Arrow...): it may crash.
            for file_id in sorted(bad_files):
                count = int(np.count_nonzero(file_ids == file_id))
                problem(
                    "data",
                    str(root / manifest.data_files[file_id].name),
                    f"damaged, so its {count} samples were not read (a damaged {manifest.backend_name} file "
                    "is not safe to parse); re-create the pack",
                )
        unsafe = frozenset(bad_files) if not pack.backend.raw_ranges else frozenset()
        image_check = deep and manifest.sample_shape is None  # pixel packs hold no encoded image
        blocks = [(a, min(a + _VERIFY_BLOCK, n)) for a in range(0, n, _VERIFY_BLOCK)]
        progress.start(n, f"verify {root.name}")
        try:
            for found in _map_blocks(pack, blocks, image_check, limit, unsafe, workers):
                report.samples_checked += found.checked
                for p in found.problems:
                    problem(p.kind, p.where, p.message)
                report.decoder_warnings.extend(found.warnings[:MAX_LISTED_PROBLEMS])
                progress.advance(found.checked, found.nbytes)
        finally:
            progress.finish()
    del report.decoder_warnings[MAX_LISTED_PROBLEMS:]
    report.seconds = time.perf_counter() - started
    return report


_VERIFY_BLOCK = 4096


def _recorded_max_pixels(manifest: Manifest) -> int:
    """The pixel limit the pack was made with (``--max-pixels``), so verify agrees with convert."""
    value = manifest.created_by.get("max_pixels")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_MAX_PIXELS


@dataclass
class _BlockResult:
    checked: int = 0
    nbytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _map_blocks(
    pack: Pack,
    blocks: list[tuple[int, int]],
    image_check: bool,
    limit: int,
    unsafe: frozenset[int],
    workers: int,
) -> Iterator[_BlockResult]:
    """Check blocks of samples here or in ``workers`` processes; results in sample order."""
    if workers <= 1 or len(blocks) <= 1:
        for a, b in blocks:
            yield _check_block(pack, a, b, image_check, limit, unsafe)
        return
    import concurrent.futures as cf

    from packer.run.pools import worker_context

    with cf.ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
        futures = [
            pool.submit(_check_block, pack, a, b, image_check, limit, unsafe) for a, b in blocks
        ]
        try:
            for future in futures:
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _check_block(
    pack: Pack, start: int, stop: int, image_check: bool, limit: int, unsafe: frozenset[int]
) -> _BlockResult:
    """CRC-32 of samples ``start..stop`` and, with ``image_check``, a full decode of each."""
    out = _BlockResult()
    crcs = pack.index.crc32
    file_ids = pack.index.locations[:, 0]
    for i in range(start, stop):
        out.checked += 1
        if unsafe and int(file_ids[i]) in unsafe:
            continue
        try:
            data = pack.read(i)
        except Exception as exc:
            message = (
                str(exc)
                if isinstance(exc, PackerError)
                else f"unreadable ({type(exc).__name__}: {exc})"
            )
            out.problems.append(Problem("sample", _sample_where(pack, i), message))
            continue
        out.nbytes += len(data)
        if zlib.crc32(data) != int(crcs[i]):
            name = pack.manifest.data_files[int(file_ids[i])].name
            out.problems.append(
                Problem(
                    "sample",
                    _sample_where(pack, i),
                    f"CRC-32 mismatch: its bytes in {name} are damaged",
                )
            )
        elif image_check:
            with quiet_decoder() as noise:
                reason = full_check(data, limit)
            if reason is not None:
                out.problems.append(Problem("image", _sample_where(pack, i), reason))
            for text in dict.fromkeys(noise):
                out.warnings.append(Problem("decoder", _sample_where(pack, i), text))
    return out


def _sample_where(pack: Pack, i: int) -> str:
    try:
        return f"sample {i} ({pack.index.key(i)})"
    except Exception:  # a damaged key index must not hide the sample problem itself
        return f"sample {i}"
