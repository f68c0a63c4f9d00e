"""Folder tree -> ordered samples, the torchvision/HF ImageFolder convention, and every omission.

Class = top-level folder, class ids = sorted folder names, and within a class the order of
``sorted(os.walk(class_dir, followlinks=True))`` then sorted file names, with ImageFolder's
extension list by default: a pack lists exactly the samples, in the order and with the labels,
``torchvision.datasets.ImageFolder`` would give. Deliberate differences, each reported: hidden files
and folders and OS junk are left out; a folder reached twice (a symlink loop, two links to one
folder) is walked once; symlinks that leave SRC follow the ``symlinks`` policy.

Everything left out is recorded (path, reason), so convert can say what it did not pack.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packer._util.columns import Array
from packer._util.pathdisk import PathSink
from packer._util.pathtable import PathTable
from packer.errors import SourceError, UsageError
from packer.format.keys import full_names, split_name
from packer.source.omissions import MAX_LISTED, Finding, Omissions, Skipped

#: Extensions packed by default (case-insensitive): exactly torchvision's ImageFolder list.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    "bmp",
    "jpeg",
    "jpg",
    "pgm",
    "png",
    "ppm",
    "tif",
    "tiff",
    "webp",
)

#: OS clutter that is never a sample, whatever its extension.
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "$recycle.bin"})

#: ``follow``: like ImageFolder, with a warning per link leaving SRC; ``inside`` (default): links
#: whose target lies inside SRC are followed, others left out with a warning; ``skip``: no links.
SYMLINK_POLICIES = ("inside", "follow", "skip")
DEFAULT_SYMLINKS = "inside"


@dataclass
class Scan:
    """The samples of a tree, in pack order.

    Attributes:
        root: the scanned folder.
        classes: class names; a sample's label indexes this list.
        paths: POSIX paths relative to ``root`` (``class/.../name.ext``), in pack order, held
            compactly (a :class:`~packer._util.pathtable.PathTable`: tens of millions fit).
        labels: int32 label per path (in memory, or a column on disk).
        full_keys: paths whose key keeps the extension (see :func:`sample_key`).
        skipped: files that looked like samples but cannot be packed (see ``on_bad_file``).
        ignored: files that are not samples (other extensions, at the root, hidden, links left out).
        findings: warnings about the tree (loops, links leaving SRC, empty classes, ...).
    """

    root: Path
    classes: list[str]
    paths: PathTable
    labels: Array
    full_keys: frozenset[str] = frozenset()
    skipped: list[Skipped] = field(default_factory=list)
    ignored: Omissions = field(default_factory=Omissions)
    findings: list[Finding] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def parse_extensions(spec: str | Iterable[str] | None) -> frozenset[str] | None:
    """``--extensions`` -> the set of lower-case extensions to pack, or None for every file.

    ``None`` or ``""``: ImageFolder's list. ``"png,jpg"``: exactly these. ``"+gif,avif"`` /
    ``"-tif"``: the default list widened or narrowed. ``"*"``: every regular file.
    """
    if spec is None:
        return frozenset(IMAGE_EXTENSIONS)
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    if not items:
        return frozenset(IMAGE_EXTENSIONS)
    if items == ["*"]:
        return None
    relative = [s for s in items if s[0] in "+-"]
    if relative and len(relative) != len(items):
        raise UsageError(
            f"--extensions {','.join(items)!r}: either list every extension (png,jpg) or change "
            "the default list (+gif,-tif), not both"
        )
    chosen: set[str] = set(IMAGE_EXTENSIONS) if relative else set()
    for item in items:
        sign, name = (item[0], item[1:]) if item[0] in "+-" else ("+", item)
        name = name.lstrip(".").lower()
        if not name or "/" in name or "*" in name:
            raise UsageError(f"--extensions: {item!r} is not an extension (write e.g. +gif or png)")
        if sign == "+":
            chosen.add(name)
        else:
            chosen.discard(name)
    if not chosen:
        raise UsageError("--extensions leaves no extension to pack")
    return frozenset(chosen)


def _is_hidden_or_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in JUNK_NAMES


def scan_tree(
    root: str | os.PathLike[str],
    *,
    extensions: frozenset[str] | None = frozenset(IMAGE_EXTENSIONS),
    symlinks: str = DEFAULT_SYMLINKS,
    on_bad_file: Callable[[Skipped], None] | None = None,
    workdir: Path | None = None,
) -> Scan:
    """Scan ``root`` into a :class:`Scan`.

    Args:
        root: the class-per-folder tree.
        extensions: lower-case extensions (no dot) that count as samples; None for every file.
        symlinks: ``inside``, ``follow`` or ``skip`` (see :data:`SYMLINK_POLICIES`).
        on_bad_file: called for each file that cannot be a sample (broken symlink, unreadable
            folder). Raise from it to stop; return to skip the file. ``None`` raises
            :class:`SourceError` at the first one.
        workdir: keep the paths and labels on disk in this folder (``paths.npy``,
            ``path_offsets.npy``, ``labels.npy``), not in memory: a scan's memory then holds
            one record per folder, not per file.
    """
    if symlinks not in SYMLINK_POLICIES:
        raise UsageError(f"--symlinks {symlinks!r} must be one of: {', '.join(SYMLINK_POLICIES)}")
    root_path = Path(root)
    if not root_path.exists():
        raise SourceError(
            f"{root_path}: no such folder; pass the folder that holds one sub-folder per class"
        )
    if not root_path.is_dir():
        raise SourceError(
            f"{root_path}: not a folder; pass the folder that holds one sub-folder per class"
        )
    sink = PathSink(workdir)
    try:
        return _Walker(root_path, extensions, symlinks, on_bad_file, sink).scan()
    except BaseException:
        sink.close()
        raise


class _Walker:
    """One scan: walks real folders first, then symlinked ones in sorted order, each folder once."""

    def __init__(
        self,
        root: Path,
        extensions: frozenset[str] | None,
        symlinks: str,
        on_bad_file: Callable[[Skipped], None] | None,
        sink: PathSink,
    ) -> None:
        self.root = root
        self.sink = sink
        self.prefix = os.fspath(root) + os.sep
        self.real_root = os.path.realpath(root)
        self.extensions = extensions
        self.symlinks = symlinks
        self.on_bad_file = on_bad_file
        self.skipped: list[Skipped] = []
        self.ignored = Omissions()
        self.findings: list[Finding] = []
        self.walked: dict[tuple[int, int], str] = {}  # real folder -> the path it was walked as
        # class -> (dir, its paths held by the sink, their count): no str object per file is kept
        self.folders: dict[str, list[tuple[str, int, int]]] = {}
        self.full_keys: set[str] = set()

    def bad(self, skip: Skipped) -> None:
        if self.on_bad_file is None:
            raise SourceError(f"{self.root / skip.path}: {skip.reason}")
        self.on_bad_file(skip)
        self.skipped.append(skip)

    def warn(self, kind: str, path: str, message: str) -> None:
        if len(self.findings) < MAX_LISTED:
            self.findings.append(Finding(kind, path, message))

    def scan(self) -> Scan:
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError as exc:
            raise SourceError(
                f"{self.root}: cannot list folder ({exc.strerror}); check its permissions"
            ) from None
        # SRC and every folder above it: a link to any of them is a loop.
        here = self.real_root
        while True:
            st = os.stat(here)
            self.walked[(st.st_dev, st.st_ino)] = "" if here == self.real_root else here
            parent = os.path.dirname(here)  # noqa: PTH120 - plain strings, compared as such
            if parent == here:
                break
            here = parent
        classes: list[str] = []
        root_samples = 0
        links: list[str] = []
        for entry in entries:
            if _is_hidden_or_junk(entry.name):
                self.ignored.add(entry.name, "hidden or OS junk")
                continue
            if _is_dir(entry):
                classes.append(entry.name)
                self.folders[entry.name] = []
                if entry.is_symlink():
                    links.append(entry.name)
                else:
                    self._walk(entry.name, links)
            else:
                self.ignored.add(entry.name, "at the root (no class)")
                if self._wanted(entry.name):
                    root_samples += 1
        if root_samples:
            self.warn(
                "files-at-root",
                ".",
                f"{root_samples} file(s) with a sample extension lie directly under SRC and belong "
                "to no class (ImageFolder ignores them too); move them into a class folder",
            )
        self._follow_links(links)
        return self._result(classes)

    def _wanted(self, name: str) -> bool:
        if self.extensions is None:
            return True
        return split_name(name)[1].lower() in self.extensions

    def _walk(self, rel: str, links: list[str]) -> None:
        """Walk the real folder ``rel`` and its real sub-folders; collect symlinked folders."""
        stack = [rel]
        while stack:
            rel = stack.pop()
            try:
                st = os.stat(self.prefix + rel)
                with os.scandir(self.prefix + rel) as it:
                    entries = list(it)
            except OSError as exc:
                self.bad(
                    Skipped(rel, f"cannot list folder ({exc.strerror}); check its permissions")
                )
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in self.walked:  # a bind mount or a link seen first; walk each folder once
                self._loop(rel, self.walked[ident])
                continue
            self.walked[ident] = rel
            names: list[str] = []
            wanted = self.extensions
            for entry in entries:
                name = entry.name
                if name[0] == "." or name.lower() in JUNK_NAMES:
                    self.ignored.add(f"{rel}/{name}", "hidden or OS junk")
                elif _is_dir(entry):
                    (links if entry.is_symlink() else stack).append(f"{rel}/{name}")
                elif wanted is None or name.rpartition(".")[2].lower() in wanted:
                    if "." not in name and wanted is not None:  # "jpg" alone is no extension
                        self.ignored.add(f"{rel}/{name}", "no extension")
                    elif self._keep_file(entry, f"{rel}/{name}"):
                        names.append(name)
                else:
                    ext = split_name(name)[1].lower()
                    self.ignored.add(
                        f"{rel}/{name}", f"extension .{ext}" if ext else "no extension"
                    )
            names.sort()
            for full in full_names(names):
                self.full_keys.add(f"{rel}/{full}")
            encoded = "".join([f"{rel}/{n}\0" for n in names]).encode("utf-8", "surrogateescape")
            self.folders[rel.partition("/")[0]].append((rel, self.sink.hold(encoded), len(names)))

    def _keep_file(self, entry: os.DirEntry[str], path: str) -> bool:
        """Whether a file named like a sample is one (links by policy; broken ones are bad)."""
        if entry.is_file(follow_symlinks=False):
            return True  # the common case: answered from the directory listing, no stat
        is_link = entry.is_symlink()
        try:
            is_file = entry.is_file()
        except OSError:
            is_file = False
        if is_link and self.symlinks == "skip":
            self.ignored.add(path, "symlink (--symlinks skip)")
            return False
        if not is_file:
            reason = "broken symbolic link" if is_link else "not a regular file"
            self.bad(Skipped(path, f"{reason}; remove it or fix the link"))
            return False
        if is_link:
            target = os.path.realpath(self.prefix + path)
            if not self._inside(target):
                return self._leaves(path, target, folder=False)
        return True

    def _inside(self, target: str) -> bool:
        return target == self.real_root or target.startswith(self.real_root + os.sep)

    def _leaves(self, path: str, target: str, *, folder: bool) -> bool:
        """A link leaving SRC: followed with a warning (``follow``) or left out with one."""
        what = "folder" if folder else "file"
        if self.symlinks == "follow":
            self.warn("symlink-outside", path, f"followed symlinked {what} leaves SRC: -> {target}")
            return True
        self.ignored.add(path, "symlink leaving SRC")
        self.warn(
            "symlink-outside",
            path,
            f"left out symlinked {what} that leaves SRC (-> {target}); pass --symlinks follow to pack it",
        )
        return False

    def _loop(self, rel: str, seen: str) -> None:
        if not seen:
            where = "SRC itself (a loop)"
        elif seen.startswith("/"):
            where = f"{seen}, a folder above SRC (a loop)"
        else:
            where = f"{seen}, which is packed already"
        self.ignored.add(rel, "folder reached twice")
        self.warn("folder-reached-twice", rel, f"symlinked folder skipped: it leads to {where}")

    def _follow_links(self, links: list[str]) -> None:
        """Walk symlinked folders after every real one, in sorted order, so the real folder of a
        link inside SRC is always packed under its own path and a loop is never entered."""
        import heapq

        heapq.heapify(links)
        while links:
            rel = heapq.heappop(links)
            if self.symlinks == "skip":
                self.ignored.add(rel, "symlink (--symlinks skip)")
                continue
            try:
                st = os.stat(self.prefix + rel)
            except OSError as exc:
                self.bad(
                    Skipped(rel, f"cannot read folder ({exc.strerror}); check its permissions")
                )
                continue
            seen = self.walked.get((st.st_dev, st.st_ino))
            if seen is not None:
                self._loop(rel, seen)
                continue
            target = os.path.realpath(self.prefix + rel)
            if not self._inside(target) and not self._leaves(rel, target, folder=True):
                continue
            found: list[str] = []
            self._walk(rel, found)
            for link in found:
                heapq.heappush(links, link)

    def _result(self, classes: list[str]) -> Scan:
        for label, name in enumerate(classes):
            folders = sorted(self.folders.pop(name), key=lambda item: item[0])
            for _, held, count in folders:
                self.sink.add(held, label, count)
            if sum(count for _, _, count in folders) == 0:
                self.warn("empty-class", name, "class folder holds no samples (its label is kept)")
        by_case: dict[str, list[str]] = {}
        for name in classes:
            by_case.setdefault(name.casefold(), []).append(name)
        for names in by_case.values():
            if len(names) > 1:
                self.warn(
                    "classes-differ-by-case",
                    names[0],
                    f"class names differ only by case: {', '.join(names)} (separate labels; "
                    "merging them on a case-insensitive filesystem loses files)",
                )
        paths, labels = self.sink.finish()
        return Scan(
            self.root,
            classes,
            paths,
            labels,
            frozenset(self.full_keys),
            self.skipped,
            self.ignored,
            self.findings,
        )


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False
