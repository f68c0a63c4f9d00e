"""Where backends come from: a table of built-ins plus the ``packer.backends`` entry-point group.

Nothing is imported until a backend is asked for, so ``pack --help`` stays fast and a broken
third-party plugin only matters to the command that uses it (as a one-line PluginError).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from packer.backends.base import Backend
from packer.errors import PluginError, UsageError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "packer.backends"
#: The format ``pack convert`` writes when none is named.
DEFAULT_FORMAT = "tar"

#: Built-in backends by name, as "module:Class"; imported on first use.
BUILTIN_BACKENDS: dict[str, str] = {
    "arrow": "packer.backends.arrow:ArrowBackend",
    "hdf5": "packer.backends.hdf5:Hdf5Backend",
    "lmdb": "packer.backends.lmdb:LmdbBackend",
    "memmap": "packer.backends.memmap:MemmapBackend",
    "parquet": "packer.backends.parquet:ParquetBackend",
    "tar": "packer.backends.tar:TarBackend",
    "zip": "packer.backends.zip:ZipBackend",
}


@dataclass(frozen=True)
class BackendSource:
    """Where a backend name points: ``origin`` is ``built-in`` or the distribution providing it."""

    name: str
    target: str
    origin: str


def _plugin_entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points  # ~20 ms: only when a plugin may be needed

    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        # A plugin cannot shadow a built-in, and the first distribution to claim a name keeps it.
        if ep.name not in BUILTIN_BACKENDS and ep.name not in found:
            found[ep.name] = ep
    return found


def backend_sources() -> list[BackendSource]:
    """All backend names known right now, built-ins first, without importing any of them."""
    sources = [BackendSource(n, t, "built-in") for n, t in sorted(BUILTIN_BACKENDS.items())]
    for name, ep in sorted(_plugin_entry_points().items()):
        dist = ep.dist.name if ep.dist is not None else "unknown distribution"
        sources.append(BackendSource(name, ep.value, dist))
    return sources


def load_backend(source: BackendSource) -> type[Backend[Any]]:
    module_name, _, attr = source.target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr) if attr else None
    except Exception as exc:  # a plugin can fail in any way; report it in one line
        raise PluginError(
            f"backend {source.name!r} from {source.origin} failed to load "
            f"({type(exc).__name__}: {exc}); reinstall or uninstall that package"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, Backend)):
        raise PluginError(
            f"backend {source.name!r} from {source.origin} points at {source.target}, "
            "which is not a packer Backend subclass; fix the plugin's entry point"
        )
    if getattr(obj, "name", None) != source.name:
        raise PluginError(
            f"backend {source.name!r} from {source.origin}: class {obj.__name__} calls itself "
            f"{getattr(obj, 'name', None)!r}; the entry-point name and Backend.name must agree"
        )
    return obj


def get_backend_class(name: str) -> type[Backend[Any]]:
    """The Backend class registered under ``name``."""
    if name in BUILTIN_BACKENDS:  # no entry-point scan: opening a pack must stay in the ms range
        return load_backend(BackendSource(name, BUILTIN_BACKENDS[name], "built-in"))
    for source in backend_sources():
        if source.name == name:
            return load_backend(source)
    known = ", ".join(s.name for s in backend_sources())
    raise UsageError(f"unknown format {name!r}; available formats: {known} (see `pack formats`)")


def backend_names() -> list[str]:
    return [s.name for s in backend_sources()]


def pixel_formats() -> list[str]:
    """Backends that can store decoded pixels (``stores_pixels``); plugins that fail to load are
    left out (they are reported where they are used)."""
    names = []
    for source in backend_sources():
        try:
            if load_backend(source).stores_pixels:
                names.append(source.name)
        except PluginError:
            continue
    return names


def make_backend(
    name: str,
    options: Mapping[str, Any] | None = None,
    pixel_shape: tuple[int, int, int] | None = None,
) -> Backend[Any]:
    """An instance of backend ``name`` with ``options`` (validated against its options class)."""
    cls = get_backend_class(name)
    return cls(cls.options_class.from_dict(options or {}, backend=name), pixel_shape=pixel_shape)


class FormatInfo(TypedDict):
    """One backend as ``pack formats --json`` lists it."""

    name: str
    origin: str
    target: str
    summary: str
    options: dict[str, Any]
    error: str | None  # why a plugin failed to load, else None


def list_formats() -> list[FormatInfo]:
    """Every backend with its origin, summary and options; a broken plugin is listed with its error."""
    out: list[FormatInfo] = []
    for source in backend_sources():
        error: str | None
        try:
            cls = load_backend(source)
        except PluginError as exc:
            summary, options, error = "", {}, str(exc)
        else:
            summary, options, error = cls.summary, cls.options_class().to_dict(), None
        out.append(
            {"name": source.name, "origin": source.origin, "target": source.target,
             "summary": summary, "options": options, "error": error}
        )  # fmt: skip
    return out
