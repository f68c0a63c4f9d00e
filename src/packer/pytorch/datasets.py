"""Map-style datasets over a pack: :class:`PackDataset` and torchvision's
:class:`ImageFolder` interface; the pack opens lazily, once per process."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict

import numpy as np
from torch.utils.data import Dataset

from packer.errors import SampleDecodeError, UsageError
from packer.format.keys import file_name
from packer.images.checks import decode_error_reason
from packer.pytorch.decoding import Decoder
from packer.read.open import open_pack
from packer.read.pack import Pack
from packer.read.views import View


class SampleOptions(TypedDict, total=False):
    """What a sample is, shared by :class:`PackDataset` and
    :class:`~packer.pytorch.streaming.PackIterableDataset` (the latter passes them on)."""

    decode: str
    transform: Callable[[Any], Any] | None
    target_transform: Callable[[int], Any] | None
    labels_only: bool
    indices: View | Sequence[int] | np.ndarray | None
    size: tuple[int, int] | None
    resize: str
    in_memory: bool
    storage_options: Mapping[str, Any] | None
    cache_dir: str | None


class PackHolder:
    """Opens the pack lazily, once per process; pickles as the path only."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        in_memory: bool,
        storage_options: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.path = str(path)
        self.in_memory = in_memory
        self.storage_options = dict(storage_options or {})
        self.cache_dir = cache_dir
        self._pack: Pack | None = None
        self._pid = -1
        probe = self._open()
        self.length = len(probe)
        self.classes = list(probe.classes)
        self.pixel_shape = probe.shape
        self.labels = np.asarray(probe.labels)  # a memory map: no copy, no data file read
        self._shard_ids = np.asarray(probe.index.locations[:, 0])
        probe.close()

    @property
    def pack(self) -> Pack:
        if self._pack is None or self._pid != os.getpid():
            self._pack = self._open()  # a remote pack: this process's own filesystem session
            self._pid = os.getpid()
        return self._pack

    def _open(self) -> Pack:
        return open_pack(
            self.path,
            in_memory=self.in_memory,
            storage_options=self.storage_options,
            cache_dir=self.cache_dir,
        )

    def shard_ids(self) -> np.ndarray:
        return self._shard_ids

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "in_memory": self.in_memory,
            "storage_options": self.storage_options,
            "cache_dir": self.cache_dir,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"], state["in_memory"], state["storage_options"], state["cache_dir"]
        )


def _indices(
    holder: PackHolder, indices: View | Sequence[int] | np.ndarray | None
) -> np.ndarray | None:
    if indices is None:
        return None
    idx = np.asarray(indices.indices if isinstance(indices, View) else indices, dtype=np.int64)
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= holder.length):
        raise UsageError(f"indices must lie in 0..{holder.length - 1}")
    return idx


class PackDataset(Dataset[Any]):
    """Map-style dataset over a pack: ``dataset[i]`` -> ``(image, label)``, or the label alone.

    Args:
        path: pack folder.
        decode: see :class:`Decoder` (default ``pil``, like ImageFolder).
        transform: applied to the decoded image (e.g. torchvision-style transforms).
        target_transform: applied to the label.
        labels_only: items are the label alone (no data file is ever read), not (image, label).
        indices: a :class:`~packer.read.views.View` or array of sample ids to expose, in that order.
        size: decode straight to (H, W) with reduced-size JPEG decoding (see :class:`Decoder`).
        resize: how ``size`` is met.
        in_memory: see :class:`~packer.read.pack.Pack`.
        storage_options, cache_dir: for a pack at a URL (see :func:`packer.open_pack`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        decode: str = "pil",
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        *,
        labels_only: bool = False,
        indices: View | Sequence[int] | np.ndarray | None = None,
        size: tuple[int, int] | None = None,
        resize: str = "center-crop",
        in_memory: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.holder = PackHolder(path, in_memory, storage_options, cache_dir)
        self.decoder = Decoder(decode, size, resize, self.holder.pixel_shape)
        self.transform = transform
        self.target_transform = target_transform
        self.labels_only = labels_only
        self.indices = _indices(self.holder, indices)

    @property
    def classes(self) -> list[str]:
        return self.holder.classes

    @property
    def class_to_idx(self) -> dict[str, int]:
        """ImageFolder's ``class_to_idx``: class name -> label."""
        return {name: i for i, name in enumerate(self.holder.classes)}

    @property
    def targets(self) -> list[int]:
        """ImageFolder's ``targets``: the label of every exposed sample, in dataset order."""
        return self.labels.tolist()  # type: ignore[no-any-return]

    @property
    def samples(self) -> list[tuple[str, int]]:
        """ImageFolder's ``samples``, with each sample's key (its path in SRC without the
        extension) instead of a file path: ``[("cat/0001", 0), ...]``."""
        pack = self.holder.pack
        ids = range(len(self)) if self.indices is None else self.indices.tolist()
        labels = self.holder.labels
        return [(pack.index.key(int(j)), int(labels[j])) for j in ids]

    @property
    def imgs(self) -> list[tuple[str, int]]:
        """ImageFolder's alias of :attr:`samples`."""
        return self.samples

    @property
    def labels(self) -> np.ndarray:
        """Labels of the exposed samples, in dataset order (reads no data file)."""
        return self.holder.labels if self.indices is None else self.holder.labels[self.indices]

    def __len__(self) -> int:
        return self.holder.length if self.indices is None else len(self.indices)

    def sample_id(self, i: int) -> int:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)}")
        return i if self.indices is None else int(self.indices[i])

    def __getitem__(self, i: int) -> Any:
        j = self.sample_id(i)
        label: Any = int(self.holder.labels[j])
        if self.target_transform is not None:
            label = self.target_transform(label)
        if self.labels_only:
            return label
        data = self.holder.pack.read(j)
        try:
            image = self.decoder(data)
        except Exception as exc:  # Pillow raises many types; name the sample and the pack
            key = self.holder.pack.index.key(j)
            raise SampleDecodeError(
                f"{self.holder.path}: sample {j} ({key}) does not decode: "
                f"{decode_error_reason(exc)}; run `pack verify --deep` on the pack"
            ) from exc
        if self.transform is not None:
            image = self.transform(image)
        return image, label


class ImageFolder(PackDataset):
    """``torchvision.datasets.ImageFolder``'s interface over a pack, without torchvision: change
    the import and the root (``ImageFolder("train.pack", transform=tf)``) and a training script
    keeps working, with the same samples, labels, order, ``classes``, ``class_to_idx``,
    ``targets``, ``samples``/``imgs`` and ``(image, target)`` items.

    Differences, as the files live in the pack: ``samples`` holds each sample's relative file name
    in SRC (``"cat/0001.jpg"``) instead of a full path; ``loader`` (default: RGB ``PIL.Image``,
    16-bit images scaled rather than clipped) receives a binary file object instead of a path
    (``PIL.Image.open`` takes both); ``is_valid_file`` is called with the relative file name and
    narrows the samples.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[io.BytesIO], Any] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(
            root, "bytes" if loader is not None else "pil", transform, target_transform
        )
        self.root = str(root)
        self.loader = loader
        names = self._file_names(range(len(self)))
        if is_valid_file is not None:
            kept = [i for i, name in enumerate(names) if is_valid_file(name)]
            self.indices = np.asarray(kept, dtype=np.int64)
            names = [names[i] for i in kept]
        self._names = names

    def _file_names(self, ids: Iterable[int]) -> list[str]:
        pack = self.holder.pack
        exts = pack.manifest.extensions
        ext_ids = pack.index.extension
        return [file_name(pack.index.key(j), exts[int(ext_ids[j])]) for j in ids]

    @property
    def samples(self) -> list[tuple[str, int]]:
        """``[("cat/0001.jpg", 0), ...]``: relative file names in SRC and labels."""
        return list(zip(self._names, self.labels.tolist(), strict=True))

    def find_classes(self, directory: str | os.PathLike[str]) -> tuple[list[str], dict[str, int]]:
        """ImageFolder's ``find_classes``; the pack already knows them."""
        return self.classes, self.class_to_idx

    def __getitem__(self, i: int) -> Any:
        if self.loader is None:
            return super().__getitem__(i)
        j = self.sample_id(i)
        image = self.loader(io.BytesIO(self.holder.pack.read(j)))
        target: Any = int(self.holder.labels[j])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target
