"""PyTorch datasets over any pack: the only package of packer that imports torch.

* :class:`PackDataset` -- map-style, a drop-in for ``torchvision.datasets.ImageFolder`` (same samples,
  same labels, same order), works with any sampler; :class:`PackSampler` is a distributed sampler
  that never hangs (equal counts on every rank) and can resume mid-epoch.
* :class:`PackIterableDataset` -- streaming in a locality-friendly order (shards shuffled, then
  blocks of consecutive samples), split over ranks and DataLoader workers.

Every order is a pure function of (seed, epoch, rank, world_size, worker id, num_workers): no shared
memory, no barriers, nothing to clean up after Ctrl-C. Packs open lazily in each process and the
datasets pickle as a few fields, so they work with ``fork`` and ``spawn`` and ``persistent_workers``.

Modules: ``decoding`` (stored bytes -> what a step wants) -> ``datasets`` (map-style, ImageFolder)
-> ``streaming`` (the sampler, the iterable dataset, rank and worker splits).
"""

from __future__ import annotations

from packer.pytorch.datasets import ImageFolder, PackDataset, SampleOptions
from packer.pytorch.decoding import DECODE_MODES, Decoder
from packer.pytorch.streaming import PackIterableDataset, PackSampler, distributed_context
from packer.read.views import View

__all__ = [
    "DECODE_MODES",
    "Decoder",
    "ImageFolder",
    "PackDataset",
    "PackIterableDataset",
    "PackSampler",
    "SampleOptions",
    "View",
    "distributed_context",
]
