"""Streaming and sampling: :class:`PackSampler` (distributed, equal counts, resumable) and
:class:`PackIterableDataset` (shards then blocks shuffled, split over ranks and workers). Every
order is a pure function of (seed, epoch, rank, world_size, worker id, num_workers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, Sampler, get_worker_info

from packer.errors import UsageError
from packer.pytorch.datasets import PackDataset
from packer.read.ordering import epoch_permutation, shard_block_order, split_for_rank, worker_share

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.12

    from packer.pytorch.datasets import SampleOptions


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
        sample: :class:`~packer.pytorch.datasets.SampleOptions`, passed to :class:`PackDataset`
            (decode, transform, target_transform, labels_only, indices, size, resize, in_memory,
            storage_options, cache_dir).
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
        **sample: Unpack[SampleOptions],
    ) -> None:
        if block_size < 1 or batch_size < 1:
            raise UsageError("block_size and batch_size must be at least 1")
        self.base = PackDataset(path, **sample)
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
