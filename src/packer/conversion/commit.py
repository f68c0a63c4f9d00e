"""The last steps of writing a pack, shared by ``convert``, ``pack merge`` and
``convert_samples``: index the shard results in shard order, record the index's digests, write
the backend's sidecar files and the manifest (which makes a folder a pack) and the update state.
The same results give the same bytes whichever way they were written.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packer._util.files import sha256_file
from packer.backends.registry import make_backend
from packer.conversion.findings import duplicates_in
from packer.conversion.plan import Plan
from packer.conversion.report import Collected
from packer.conversion.result import ShardResult
from packer.conversion.resume import remove_strays
from packer.conversion.state import StateRecorder
from packer.errors import OutputError, SourceError
from packer.format.index import INDEX_FILES, Index, IndexWriter
from packer.format.keys import safe_relative
from packer.format.manifest import Manifest
from packer.source.omissions import MAX_LISTED

if TYPE_CHECKING:
    from packer.backends.base import Backend


def write_pack(
    root: Path,
    plan: Plan,
    results: Iterable[ShardResult],
    on_result: Callable[[ShardResult], None] | None = None,
    *,
    arguments: dict[str, Any] | None = None,
) -> Collected:
    """Index the shard results (in shard order) and write the manifest into ``root``, where the
    data files already are, and the update state (:mod:`packer.conversion.state`) when ``arguments`` (the
    convert's, for ``pack status``) are given. Shared by ``convert`` and ``pack merge``: the
    same results give the same bytes."""
    scan = plan.scan
    collected = Collected(
        len(scan.classes), skipped=list(scan.skipped), findings=list(scan.findings)
    )
    state = StateRecorder(root)
    results = _calling(state.add, results)
    if on_result is not None:
        results = _calling(on_result, results)
    dtypes = index_results(
        root,
        results,
        collected,
        empty=f"{scan.root}: every image was skipped; nothing to pack (see the errors above)",
    )
    collected.findings.extend(duplicates_in(root, scan))
    remove_strays(root, {d.name for d in collected.data_files})
    backend = make_backend(plan.backend_name, plan.backend_options, plan.pixel_shape)
    finish_pack(root, backend, _manifest(plan, collected, dtypes))
    state.save(root, plan, arguments)
    return collected


def _calling(
    on_result: Callable[[ShardResult], None], results: Iterable[ShardResult]
) -> Iterator[ShardResult]:
    for result in results:
        on_result(result)
        yield result


def index_results(
    root: Path,
    results: Iterable[ShardResult],
    collected: Collected,
    *,
    empty: str,
    unique_keys: bool = False,
    key_order: bool = True,
) -> dict[str, str]:
    """Append each shard's rows (in shard order) to the pack index in ``root`` and to
    ``collected``, then finish the index and return its dtypes (for the manifest); none at all is
    a SourceError saying ``empty`` (unless ``empty`` is ""). On any error the unfinished index is
    closed before it propagates. Without ``key_order`` (a dry run's index, only scanned for
    duplicates) the key sort is left out."""
    index = IndexWriter(root)
    try:
        for r in results:
            index.append(r.labels, r.locations, r.crc32, r.extension_ids, r.key_blob, r.key_lengths)
            collected.add(r)
        if index.count == 0 and empty:
            raise SourceError(empty)
        index.finish(unique_keys=unique_keys, key_order=key_order)
    except BaseException:
        index.abort()
        raise
    return index.dtypes


def finish_pack(root: Path, backend: Backend[Any], manifest: Manifest) -> None:
    """Record the index files' digests, write the backend's files for other loaders (recorded
    too) and then the manifest, which makes ``root`` a pack."""
    manifest.index_sha256.update(index_digests(root))
    for name, data in sorted(backend.sidecar_files(manifest, Index(root, manifest)).items()):
        target = root / safe_relative(name)  # a plugin's names stay inside the pack
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        manifest.index_sha256[name] = hashlib.sha256(data).hexdigest()
    manifest.write(root)


def _manifest(plan: Plan, collected: Collected, index_dtypes: dict[str, str]) -> Manifest:
    scan = plan.scan
    return Manifest(
        backend_name=plan.backend_name,
        options=plan.backend_options,
        classes=scan.classes,
        class_counts=collected.counts.tolist(),
        num_samples=collected.num_samples,
        payload_bytes=collected.payload_bytes,
        data_files=collected.data_files,
        extensions=plan.ext_names,
        index_sha256={},
        index_dtypes=index_dtypes,
        source={
            "files": len(scan) + len(scan.skipped),
            "bytes": collected.source_bytes,
            "ignored_files": scan.ignored.count,
            "ignored_by_reason": dict(sorted(scan.ignored.by_reason.items())),
        },
        created_by=plan.created_by,
        skipped=[s.to_dict() for s in sorted(collected.skipped, key=lambda s: s.path)],
        ignored=[s.to_dict() for s in scan.ignored.listed],
        warnings=[w.to_dict() for w in collected.findings[:MAX_LISTED]],
        transform=plan.transform,
        sample_shape=list(plan.pixel_shape) if plan.pixel_shape is not None else None,
    )


def output_error(dst: Path, exc: OSError) -> OutputError:
    """Source read errors are handled per file; any other OSError is the output side failing."""
    where = f" ({exc.filename})" if exc.filename else ""
    hint = (
        "free some disk space"
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        else "check the destination"
    )
    return OutputError(
        f"{dst}: writing the pack failed: {exc.strerror or exc}{where}; {hint}. "
        "Nothing was written and any previous pack is untouched"
    )


def index_digests(root: Path) -> dict[str, str]:
    return {name: sha256_file(root / name) for name in INDEX_FILES}
