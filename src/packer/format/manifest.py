"""``manifest.json``: what a pack is, one schema for every backend, validated field by field.

Written with sorted keys and no timestamps: the same input and options give byte-identical packs.
The per-sample arrays it describes live in :mod:`packer.format.index`; docs/format.md is the spec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packer._util.files import write_file_synced
from packer.errors import PackError
from packer.format.dtypes import V1_DTYPES, allowed_dtypes

FORMAT_NAME = "packer"


#: The version this packer writes. 2: the index's dtypes are recorded (``index.dtypes``) and
#: may be narrower than version 1's fixed ones (see :mod:`packer.format.index`).
FORMAT_VERSION = 2
#: The versions this packer reads.
READABLE_VERSIONS = (1, 2)


MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class DataFile:
    """One data file of a pack, as recorded in the manifest."""

    name: str
    num_samples: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_samples": self.num_samples,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


@dataclass
class Manifest:
    """The parsed ``manifest.json``. See docs/format.md for every field."""

    backend_name: str
    options: dict[str, Any]
    classes: list[str]
    class_counts: list[int]
    num_samples: int
    payload_bytes: int
    data_files: list[DataFile]
    extensions: list[str]
    index_sha256: dict[str, str]
    source: dict[str, Any] = field(default_factory=dict)
    created_by: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    transform: dict[str, Any] | None = None
    sample_shape: list[int] | None = None
    format_version: int = FORMAT_VERSION
    #: the dtype of each index array (version 1 packs: the fixed dtypes of that version)
    index_dtypes: dict[str, str] = field(default_factory=lambda: dict(V1_DTYPES))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "backend": {"name": self.backend_name, "options": self.options},
            "classes": self.classes,
            "class_counts": self.class_counts,
            "num_samples": self.num_samples,
            "payload_bytes": self.payload_bytes,
            "data_files": [d.to_dict() for d in self.data_files],
            "extensions": self.extensions,
            "index": (
                {"sha256": self.index_sha256, "dtypes": self.index_dtypes}
                if self.format_version >= 2
                else {"sha256": self.index_sha256}
            ),
            "source": self.source,
            "created_by": self.created_by,
            "skipped": self.skipped,
            "ignored": self.ignored,
            "warnings": self.warnings,
            "transform": self.transform,
            "sample_shape": self.sample_shape,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    def write(self, root: Path) -> None:
        write_file_synced(root / MANIFEST_NAME, self.to_json().encode())

    @classmethod
    def read(cls, root: Path) -> Manifest:
        path = root / MANIFEST_NAME
        if not root.is_dir():
            raise PackError(
                f"{root}: not a pack (no such folder); pass the folder `pack convert` wrote"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PackError(
                f"{root}: not a pack ({MANIFEST_NAME} is missing); pass the folder `pack convert` "
                "wrote"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PackError(f"{path}: cannot read ({exc}); re-create the pack") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PackError(f"{path}: not valid JSON ({exc}); re-create the pack") from None
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: Any, path: Path | str = MANIFEST_NAME) -> Manifest:
        """Validate every field, so damaged manifests fail here with a clear message, not later."""
        v = _Validator(path)
        obj = v.mapping(raw, "manifest")
        if obj.get("format") != FORMAT_NAME:
            raise PackError(f"{path}: not a packer manifest (format={obj.get('format')!r})")
        version = v.integer(obj, "format_version")
        if version not in READABLE_VERSIONS:
            raise PackError(
                f"{path}: pack format version {version} is not supported by this packer "
                f"(reads versions {', '.join(map(str, READABLE_VERSIONS))}); upgrade packer or "
                "re-create the pack"
            )
        backend = v.mapping(obj.get("backend"), "backend")
        n = v.integer(obj, "num_samples")
        data_files = []
        for i, item in enumerate(v.sequence(obj.get("data_files"), "data_files")):
            d = v.mapping(item, f"data_files[{i}]")
            name = v.string(d, "name")
            if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
                raise PackError(f"{path}: data file name {name!r} is not a plain file name")
            data_files.append(
                DataFile(
                    name, v.integer(d, "num_samples"), v.integer(d, "bytes"), v.string(d, "sha256")
                )
            )
        if not data_files:
            raise PackError(f"{path}: lists no data files")
        if sum(d.num_samples for d in data_files) != n:
            raise PackError(f"{path}: data file sample counts do not add up to num_samples={n}")
        classes = [
            v.string_value(c, "classes[]") for c in v.sequence(obj.get("classes"), "classes")
        ]
        counts = [
            v.int_value(c, "class_counts[]")
            for c in v.sequence(obj.get("class_counts"), "class_counts")
        ]
        if len(counts) != len(classes) or sum(counts) != n:
            raise PackError(f"{path}: class_counts do not match classes / num_samples")
        transform = obj.get("transform")
        if transform is not None:
            transform = dict(v.mapping(transform, "transform"))
        shape = obj.get("sample_shape")
        if shape is not None:
            shape = [v.int_value(d, "sample_shape[]") for d in v.sequence(shape, "sample_shape")]
            if len(shape) != 3 or 0 in shape:
                raise PackError(f"{path}: sample_shape must be [height, width, channels]")
        index = v.mapping(obj.get("index"), "index")
        sha = v.mapping(index.get("sha256"), "index.sha256")
        dtypes = dict(V1_DTYPES)
        if version >= 2:
            found = v.mapping(index.get("dtypes"), "index.dtypes")
            for name in V1_DTYPES:
                dtype = found.get(name)
                if dtype not in allowed_dtypes(name):
                    raise v.fail(f"index.dtypes.{name}", " or ".join(allowed_dtypes(name)))
                dtypes[name] = dtype
        return cls(
            backend_name=v.string(backend, "name"),
            options=dict(v.mapping(backend.get("options", {}), "backend.options")),
            classes=classes,
            class_counts=counts,
            num_samples=n,
            payload_bytes=v.integer(obj, "payload_bytes"),
            data_files=data_files,
            extensions=[
                v.string_value(e, "extensions[]")
                for e in v.sequence(obj.get("extensions"), "extensions")
            ],
            index_sha256={str(k): v.string_value(s, "index.sha256") for k, s in sha.items()},
            source=dict(v.mapping(obj.get("source", {}), "source")),
            created_by=dict(v.mapping(obj.get("created_by", {}), "created_by")),
            skipped=[
                dict(v.mapping(s, "skipped[]"))
                for s in v.sequence(obj.get("skipped", []), "skipped")
            ],
            ignored=[
                dict(v.mapping(s, "ignored[]"))
                for s in v.sequence(obj.get("ignored", []), "ignored")
            ],
            warnings=[
                dict(v.mapping(s, "warnings[]"))
                for s in v.sequence(obj.get("warnings", []), "warnings")
            ],
            transform=transform,
            sample_shape=shape,
            format_version=version,
            index_dtypes=dtypes,
        )


class _Validator:
    """Type checks that name the manifest and the field, for hostile or hand-edited manifests."""

    def __init__(self, path: Path | str) -> None:
        self.path = path

    def fail(self, what: str, expected: str) -> PackError:
        return PackError(f"{self.path}: field {what} must be {expected}; the manifest is damaged")

    def mapping(self, value: Any, what: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(what, "an object")
        return value

    def sequence(self, value: Any, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(what, "a list")
        return value

    def int_value(self, value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(what, "a non-negative integer")
        return value

    def integer(self, obj: Mapping[str, Any], key: str) -> int:
        return self.int_value(obj.get(key), key)

    def string_value(self, value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise self.fail(what, "a string")
        return value

    def string(self, obj: Mapping[str, Any], key: str) -> str:
        return self.string_value(obj.get(key), key)
