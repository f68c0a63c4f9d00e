"""``pack verify`` of a local pack: every file against the manifest's sha256, every sample's
CRC-32, and with ``deep`` every image decoded. Damage is reported, never raised, and never parsed:
a damaged data file of a backend without raw ranges is not handed to its native library (it may
crash on it)."""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packer._util.files import sha256_file
from packer.backends.registry import make_backend
from packer.check.report import Problem, VerifyReport
from packer.errors import PackerError, PackError
from packer.format.index import INDEX_FILES, Index
from packer.format.keys import safe_relative
from packer.format.manifest import Manifest
from packer.images.checks import DEFAULT_MAX_PIXELS, full_check, quiet_decoder
from packer.progress import NoProgress, Progress
from packer.read.pack import Pack

if TYPE_CHECKING:
    from packer.backends.base import Backend


MAX_LISTED_PROBLEMS = 1000


VERIFY_BLOCK = 4096  # samples per verify task


def verify_local(
    root: Path,
    *,
    deep: bool = False,
    max_pixels: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    block: int = VERIFY_BLOCK,
) -> VerifyReport:
    """:func:`packer.check.verify.verify_pack` for the pack folder ``root``: files first (the
    manifest, index and loader indexes, then every data file), then every sample, ``block``
    samples to a task."""
    started = time.perf_counter()
    if not (root / "manifest.json").exists():  # not damage: this folder was never a pack
        Manifest.read(root)  # raises the same one-line error as `pack inspect`
    check = _Checker(VerifyReport(root, deep))
    try:
        manifest = Manifest.read(root)
        backend = make_backend(manifest.backend_name, manifest.options)
    except PackerError as exc:
        check.problem("manifest", str(root / "manifest.json"), str(exc))
        return check.report
    check.files(manifest, INDEX_FILES)
    index = Index(root, manifest)
    try:
        index.load_all()
    except PackError as exc:
        check.problem("index", str(root / "index"), str(exc))
        return check.report
    check.loader_indexes(manifest, index, backend)
    bad_files = check.data_files(manifest)
    check.samples(
        bad_files, deep, max_pixels or _recorded_max_pixels(manifest), workers,
        progress or NoProgress(), block,
    )  # fmt: skip
    check.report.seconds = time.perf_counter() - started
    return check.report


class _Checker:
    """The checks of one verify, each adding what it finds to ``report``."""

    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        self.root = report.path

    def problem(self, kind: str, where: str, message: str) -> None:
        if len(self.report.problems) < MAX_LISTED_PROBLEMS:
            self.report.problems.append(Problem(kind, where, message))
        else:
            self.report.problems_not_listed += 1

    def files(self, manifest: Manifest, names: Iterable[str]) -> None:
        """Each named file against the sha256 the manifest records."""
        for name in names:
            expected = manifest.index_sha256.get(name)
            try:
                file = self.root / safe_relative(name)
            except PackError as exc:  # a hand-edited manifest must not make verify read outside
                self.problem("manifest", str(self.root / "manifest.json"), str(exc))
                continue
            self.report.files_checked += 1
            if not file.is_file():
                self.problem("index", str(file), "missing")
            elif expected is None:
                self.problem("index", str(file), "no checksum in the manifest")
            elif sha256_file(file) != expected:
                self.problem(
                    "index", str(file),
                    "sha256 does not match the manifest (file changed or damaged)",
                )  # fmt: skip

    def loader_indexes(self, manifest: Manifest, index: Index, backend: Backend[Any]) -> None:
        """Loader indexes (wids.json, DALI .idx...): the ones the backend writes for this index,
        and any other the manifest records; each must be there, recorded, and what the index
        implies."""
        try:
            derived = backend.sidecar_files(manifest, index)
        except Exception as exc:  # damaged index values (checked per sample) or a plugin's bug
            where = str(self.root / "index")
            self.problem("index", where, f"loader indexes cannot be derived from it ({exc!r})")
            derived = {}
        self.files(manifest, sorted((set(manifest.index_sha256) - set(INDEX_FILES)) | set(derived)))
        for name, data in sorted(derived.items()):
            file = self.root / name
            recorded = manifest.index_sha256.get(name)
            if (
                file.is_file()
                and recorded is not None
                and hashlib.sha256(data).hexdigest() != recorded
            ):
                self.problem(
                    "index", str(file), "does not match the pack index; re-create the pack"
                )

    def data_files(self, manifest: Manifest) -> set[int]:
        """Every data file's size and sha256; returns the ids of the bad ones."""
        bad_files: set[int] = set()
        for file_id, data_file in enumerate(manifest.data_files):
            file = self.root / data_file.name
            self.report.files_checked += 1
            if not file.is_file():
                self.problem("data", str(file), "missing")
                bad_files.add(file_id)
                continue
            size = file.stat().st_size
            if size != data_file.bytes:
                self.problem(
                    "data", str(file),
                    f"size {size} bytes, manifest says {data_file.bytes} (truncated or appended)",
                )  # fmt: skip
                bad_files.add(file_id)
            elif sha256_file(file) != data_file.sha256:
                self.problem(
                    "data", str(file), "sha256 does not match the manifest (damaged bytes)"
                )
                bad_files.add(file_id)
        return bad_files

    def samples(
        self,
        bad_files: set[int],
        deep: bool,
        limit: int,
        workers: int,
        progress: Progress,
        block: int,
    ) -> None:
        """Every sample's CRC-32 (and with ``deep`` a full decode), in blocks, here or in
        ``workers`` processes. A damaged file of a backend without raw ranges is never read."""
        report = self.report
        with Pack(self.root) as pack:
            manifest = pack.manifest
            n = len(pack)
            if bad_files and not pack.backend.raw_ranges:
                # Never hand a damaged file to a native parser (LMDB, HDF5, Arrow...): it may crash.
                file_ids = pack.index.locations[:, 0]
                for file_id in sorted(bad_files):
                    count = int(np.count_nonzero(file_ids == file_id))
                    self.problem(
                        "data",
                        str(self.root / manifest.data_files[file_id].name),
                        f"damaged, so its {count} samples were not read (a damaged "
                        f"{manifest.backend_name} file is not safe to parse); re-create the pack",
                    )
            unsafe = frozenset(bad_files) if not pack.backend.raw_ranges else frozenset()
            image_check = deep and manifest.sample_shape is None  # pixel packs hold no images
            blocks = [(a, min(a + block, n)) for a in range(0, n, block)]
            progress.start(n, f"verify {self.root.name}")
            try:
                for found in _map_blocks(pack, blocks, image_check, limit, unsafe, workers):
                    report.samples_checked += found.checked
                    for p in found.problems:
                        self.problem(p.kind, p.where, p.message)
                    report.decoder_warnings.extend(found.warnings[:MAX_LISTED_PROBLEMS])
                    progress.advance(found.checked, found.nbytes)
            finally:
                progress.finish()
        del report.decoder_warnings[MAX_LISTED_PROBLEMS:]


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

    from packer.run.pools import init_worker, worker_context

    with cf.ProcessPoolExecutor(
        workers, mp_context=worker_context(), initializer=init_worker
    ) as pool:
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
