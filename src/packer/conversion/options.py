"""The options that shape a pack's bytes, named once.

:class:`ConvertOptions` is what ``pack convert`` and ``pack plan`` share and what a pack records:
its :meth:`~ConvertOptions.recorded` form is the update state's ``arguments`` (compared by
``--update``, replayed by ``pack status``) and the plan folder's ``arguments.json``. Settings
that only say how a run goes (workers, executor, progress, force, resume, dry run, update,
checksum, storage options) are not here and are never recorded: the same options give the same
bytes whichever way the run went.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packer._util.sizes import parse_bytes
from packer.backends.registry import DEFAULT_FORMAT
from packer.conversion.cuts import CUT_MODES
from packer.errors import UsageError
from packer.images.checks import VALIDATE_MODES
from packer.source.scanner import DEFAULT_SYMLINKS

if TYPE_CHECKING:
    from packer.images.transforms import Transform

ON_ERROR_MODES = ("fail", "skip")


@dataclass(frozen=True)
class ConvertOptions:
    """Every choice that shapes a pack's bytes, checked when made (a bad value is a
    :class:`~packer.errors.UsageError` before any work). Field meanings: see
    :func:`packer.convert`."""

    format: str = DEFAULT_FORMAT
    options: Mapping[str, Any] = field(default_factory=dict)
    shard_size: int | str | None = None
    samples_per_shard: int | None = None
    on_error: str = "fail"
    validate: str = "quick"
    extensions: str | tuple[str, ...] | None = None
    symlinks: str = DEFAULT_SYMLINKS
    transform: Transform | None = None
    max_pixels: int | None = None
    from_list: str | os.PathLike[str] | None = None
    classes_file: str | os.PathLike[str] | None = None
    cut: str = "content"

    def __post_init__(self) -> None:
        extensions = self.extensions
        if extensions is not None and not isinstance(extensions, str):
            object.__setattr__(self, "extensions", tuple(extensions))
        object.__setattr__(self, "options", dict(self.options or {}))
        check_write_options(self.on_error, self.validate, self.samples_per_shard, self.cut)
        if self.shard_size is not None:
            parse_bytes(self.shard_size)
        if self.max_pixels is not None and self.max_pixels < 1:
            raise UsageError(f"--max-pixels {self.max_pixels} must be at least 1")
        if self.from_list is not None and self.extensions is not None:
            raise UsageError(
                "--extensions filters a folder scan; a --from-list list is packed as is"
            )
        if self.from_list is None and self.classes_file is not None:
            raise UsageError(
                "--classes-file goes with --from-list (a folder's classes are its folders)"
            )

    @property
    def shard_bytes(self) -> int | None:
        """``shard_size`` in bytes (None: not given)."""
        return None if self.shard_size is None else parse_bytes(self.shard_size)

    def recorded(self) -> dict[str, Any]:
        """These options as a pack's update state keeps them: JSON, a transform as its dict, list
        files as absolute paths, extensions sorted. (``workdir``: null is a key the first state
        format recorded; it is kept so that packs stay byte-identical, and ignored on read.)"""
        out: dict[str, Any] = {"workdir": None}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "transform" and value is not None:
                value = value.to_dict()
            elif f.name in ("from_list", "classes_file") and value is not None:
                value = str(Path(value).absolute())
            elif f.name == "extensions" and isinstance(value, tuple):
                value = sorted(value)
            elif f.name == "options":
                value = dict(value)
            out[f.name] = value
        return dict(sorted(out.items()))

    @classmethod
    def from_recorded(cls, recorded: Mapping[str, Any]) -> ConvertOptions:
        """The options a :meth:`recorded` document names (unknown keys are ignored: a newer
        packer's state still plans with what this one knows)."""
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in recorded.items() if k in known}
        if given.get("transform") is not None:
            from packer.images.transforms import Transform

            given["transform"] = Transform.from_dict(given["transform"])
        if isinstance(given.get("extensions"), list):
            given["extensions"] = tuple(given["extensions"])
        return cls(**given)

    @property
    def decodes(self) -> bool:
        """Whether writing decodes every image (CPU-bound: worth a worker per CPU)."""
        return self.transform is not None or self.validate == "full"


def check_write_options(
    on_error: str, validate: str, samples_per_shard: int | None, cut: str = "content"
) -> None:
    """The options every way of writing a pack shares (``convert_samples`` too), checked before
    any work."""
    if cut not in CUT_MODES:
        raise UsageError(f"--cut {cut!r} must be one of: {', '.join(CUT_MODES)}")
    if on_error not in ON_ERROR_MODES:
        raise UsageError(f"--on-error {on_error!r} must be one of: {', '.join(ON_ERROR_MODES)}")
    if validate not in VALIDATE_MODES:
        raise UsageError(f"--validate {validate!r} must be one of: {', '.join(VALIDATE_MODES)}")
    if samples_per_shard is not None and samples_per_shard < 1:
        raise UsageError(f"--samples-per-shard {samples_per_shard} must be at least 1")
