"""PyTorch datasets over any pack: the only module of packer that imports torch.

* :class:`PackDataset` -- map-style, a drop-in for ``torchvision.datasets.ImageFolder`` (same samples,
  same labels, same order), works with any sampler; :class:`PackSampler` is a distributed sampler
  that never hangs (equal counts on every rank) and can resume mid-epoch.
* :class:`PackIterableDataset` -- streaming in a locality-friendly order (shards shuffled, then
  blocks of consecutive samples), split over ranks and DataLoader workers.

Every order is a pure function of (seed, epoch, rank, world_size, worker id, num_workers): no shared
memory, no barriers, nothing to clean up after Ctrl-C. Packs open lazily in each process and the
datasets pickle as a few fields, so they work with ``fork`` and ``spawn`` and ``persistent_workers``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

from packer.errors import SampleDecodeError, UsageError
from packer.format.keys import file_name
from packer.images.checks import decode_error_reason
from packer.images.transforms import WIDE_MODES, Transform, to_8bit
from packer.read.open import open_pack
from packer.read.ordering import epoch_permutation, shard_block_order, split_for_rank, worker_share
from packer.read.pack import Pack
from packer.read.views import View

DECODE_MODES = ("bytes", "pil", "numpy", "tensor")


def distributed_context(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): explicit values, else torch.distributed when initialised, else the
    RANK / WORLD_SIZE environment variables, else a single process."""
    if rank is not None and world_size is not None:
        found = (rank, world_size)
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        found = (torch.distributed.get_rank(), torch.distributed.get_world_size())
    else:
        found = (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
    if found[1] < 1 or not 0 <= found[0] < found[1]:
        raise UsageError(f"rank {found[0]} is not within world size {found[1]}")
    return found


class Decoder:
    """Turns stored bytes into what a training step wants, picklable so workers can use it.

    Args:
        decode: ``bytes`` (as stored), ``pil`` (RGB ``PIL.Image``, like ImageFolder's loader),
            ``numpy`` (H x W x C uint8) or ``tensor`` (C x H x W uint8 ``torch.Tensor``).
        size: optional (H, W): decode straight to this size, using reduced-size JPEG decoding
            (Pillow ``draft``) when it helps -- much faster for small training resolutions.
        resize: how ``size`` is met: ``stretch``, ``center-crop`` or ``pad``.
        pixel_shape: set for pixel packs, whose payload is raw H x W x C uint8 (no decoding).
    """

    def __init__(
        self,
        decode: str = "pil",
        size: tuple[int, int] | None = None,
        resize: str = "center-crop",
        pixel_shape: tuple[int, int, int] | None = None,
    ) -> None:
        if decode not in DECODE_MODES:
            raise UsageError(f"decode={decode!r} must be one of: {', '.join(DECODE_MODES)}")
        self.decode = decode
        self.pixel_shape = pixel_shape
        self.transform = Transform(size=size, resize=resize, mode="RGB") if size else None

    def _array(self, data: bytes) -> np.ndarray:
        if self.pixel_shape is not None:
            return np.frombuffer(data, dtype=np.uint8).reshape(self.pixel_shape)
        if self.transform is not None:
            return self.transform.pixels(data)
        return np.asarray(_open_rgb(data))

    def __call__(self, data: bytes) -> Any:
        if self.decode == "bytes":
            return data
        if self.decode == "pil":
            if self.pixel_shape is None and self.transform is None:
                return _open_rgb(data)
            arr = self._array(data)
            return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        arr = self._array(data)
        if self.decode == "numpy":
            return arr if arr.flags.writeable else arr.copy()
        # CHW uint8; the transposing copy also gives the tensor writable memory of its own
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _open_rgb(data: bytes) -> Image.Image:
    """ImageFolder's loader (``convert("RGB")``), but 16-bit and float images are scaled, not
    clipped to white."""
    with Image.open(io.BytesIO(data)) as im:
        if im.mode in WIDE_MODES:
            return to_8bit(im).convert("RGB")
        return im.convert("RGB")


class _PackHolder:
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
    holder: _PackHolder, indices: View | Sequence[int] | np.ndarray | None
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
        self.holder = _PackHolder(path, in_memory, storage_options, cache_dir)
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


class PackSampler(Sampler[int]):
    """A distributed sampler for :class:`PackDataset` with equal counts per rank and mid-epoch resume.

    Args:
        dataset: anything with ``len()``.
        shuffle: a fresh permutation each epoch (seeded by ``seed`` and the epoch).
        seed: the shuffle seed; must be the same on every rank.
        rank, world_size: default from torch.distributed, else RANK/WORLD_SIZE, else 0/1.
        drop_last: drop the tail instead of padding by wrapping around.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.length = len(dataset)
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = distributed_context(rank, world_size)
        self.drop_last = drop_last
        self.epoch = 0
        self.start = 0  # samples of this epoch already consumed (resume)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = 0

    def order(self) -> np.ndarray:
        base = epoch_permutation(self.length, self.shuffle, self.seed, self.epoch)
        return split_for_rank(base, self.rank, self.world_size, self.drop_last)

    def __len__(self) -> int:
        return len(self.order()) - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :].tolist())

    def state_dict(self, consumed: int) -> dict[str, int]:
        """State after ``consumed`` samples of the current epoch were consumed on this rank."""
        return {"seed": self.seed, "epoch": self.epoch, "consumed": self.start + consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch, self.start = state["seed"], state["epoch"], state["consumed"]


class PackIterableDataset(IterableDataset[Any]):
    """Streams a pack in a locality-friendly shuffled order, split over ranks and workers.

    Per epoch the order is: shards in a seeded random order; within each shard, blocks of
    ``block_size`` consecutive samples in random order, shuffled inside each block. Each rank then
    takes an equal contiguous chunk (padded or dropped), and DataLoader worker ``w`` of ``k`` takes
    batches ``w, w + k, ...`` of that chunk -- so with ``batch_size`` set to the DataLoader's, the
    sequence a rank sees is the same for any ``num_workers``.

    Args:
        path: pack folder.
        shuffle: shuffle as above (else pack order).
        seed: the seed; must be equal on every rank.
        block_size: samples per shuffled block (bigger = more locality, less randomness).
        batch_size: the DataLoader's batch size (see above).
        drop_last: drop the tail instead of padding so that every rank gets the same count.
        rank, world_size: default from torch.distributed, else RANK/WORLD_SIZE, else 0/1.
        decode, transform, target_transform, labels_only, indices, size, resize, in_memory: as for
            :class:`PackDataset`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        shuffle: bool = True,
        seed: int = 0,
        *,
        block_size: int = 256,
        batch_size: int = 1,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        decode: str = "pil",
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        labels_only: bool = False,
        indices: View | Sequence[int] | np.ndarray | None = None,
        size: tuple[int, int] | None = None,
        resize: str = "center-crop",
        in_memory: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
    ) -> None:
        if block_size < 1 or batch_size < 1:
            raise UsageError("block_size and batch_size must be at least 1")
        self.base = PackDataset(
            path, decode, transform, target_transform, labels_only=labels_only, indices=indices, size=size,
            resize=resize, in_memory=in_memory, storage_options=storage_options, cache_dir=cache_dir,
        )  # fmt: skip
        self.shuffle = shuffle
        self.seed = seed
        self.block_size = block_size
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.rank, self.world_size = distributed_context(rank, world_size)
        self.epoch = 0
        self.start = 0
        self._yielded = 0

    @property
    def classes(self) -> list[str]:
        return self.base.classes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = 0

    def epoch_order(self) -> np.ndarray:
        """Dataset positions of the whole epoch, before the split over ranks."""
        n = len(self.base)
        if not self.shuffle:
            return np.arange(n)
        ids = np.arange(n) if self.base.indices is None else self.base.indices
        storage_order = np.argsort(ids, kind="stable")  # dataset positions in storage order
        shard_of = self.base.holder.shard_ids()[ids[storage_order]]
        return shard_block_order(shard_of, storage_order, self.seed, self.epoch, self.block_size)

    def rank_order(self) -> np.ndarray:
        """This rank's positions for the epoch, all equal in length across ranks."""
        return split_for_rank(self.epoch_order(), self.rank, self.world_size, self.drop_last)

    def __len__(self) -> int:
        return len(self.rank_order()) - self.start

    def __iter__(self) -> Iterator[Any]:
        order = self.rank_order()[self.start :]
        info = get_worker_info()
        if info is not None:
            order = worker_share(order, self.batch_size, info.id, info.num_workers)
        self._yielded = 0
        for position in order.tolist():
            item = self.base[position]
            self._yielded += 1
            yield item

    def state_dict(self, consumed: int | None = None) -> dict[str, int]:
        """State to resume this epoch. ``consumed``: samples the training loop received on this
        rank this epoch; defaults to what this object yielded itself (right for num_workers=0)."""
        done = self._yielded if consumed is None else consumed
        return {"seed": self.seed, "epoch": self.epoch, "consumed": self.start + done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch, self.start = state["seed"], state["epoch"], state["consumed"]


__all__ = [
    "Decoder",
    "PackDataset",
    "PackIterableDataset",
    "PackSampler",
    "View",
    "distributed_context",
]
