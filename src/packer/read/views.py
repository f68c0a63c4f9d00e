"""Subsets and re-orderings of a pack as numpy index arrays, without reading any image byte.

A :class:`View` wraps the pack's labels and an index array; each method returns a new View, so they
compose: ``View(pack).classes(keep=["cat", "dog"]).percent(0, 90).shuffle(seed=0)``. Use
``view.indices`` with ``pack.read`` or pass the view to the torch datasets (``indices=view``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from packer.errors import UsageError

if TYPE_CHECKING:
    from packer.read.pack import Pack


class View:
    """An ordered selection of sample ids of one pack.

    Args:
        pack: the pack (only its labels and class names are used).
        indices: sample ids; all samples in pack order when omitted.
    """

    def __init__(self, pack: Pack, indices: np.ndarray | Sequence[int] | None = None) -> None:
        self.pack = pack
        n = len(pack)
        idx = (
            np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        )
        if idx.ndim != 1:
            raise UsageError("a view's indices must be a 1-D array of sample ids")
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise UsageError(f"a view's indices must lie in 0..{n - 1}")
        self.indices = idx

    def _new(self, indices: np.ndarray) -> View:
        return View(self.pack, indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.indices if dtype is None else self.indices.astype(dtype)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.pack.labels)[self.indices]

    def _class_ids(self, classes: Iterable[str | int]) -> np.ndarray:
        names = self.pack.classes
        ids = []
        for c in classes:
            if isinstance(c, str):
                if c not in names:
                    raise UsageError(
                        f"unknown class {c!r}; the pack's classes are: {', '.join(names[:20])}"
                    )
                ids.append(names.index(c))
            else:
                if not 0 <= int(c) < len(names):
                    raise UsageError(f"class id {c} out of range 0..{len(names) - 1}")
                ids.append(int(c))
        return np.asarray(ids, dtype=np.int64)

    def classes(
        self, keep: Iterable[str | int] | None = None, drop: Iterable[str | int] | None = None
    ) -> View:
        """Keep only (or drop) the samples of these classes (names or label ids)."""
        mask = np.ones(len(self.indices), dtype=bool)
        labels = self.labels
        if keep is not None:
            mask &= np.isin(labels, self._class_ids(keep))
        if drop is not None:
            mask &= ~np.isin(labels, self._class_ids(drop))
        return self._new(self.indices[mask])

    def percent(self, start: float, stop: float) -> View:
        """The samples from ``start`` % to ``stop`` % of the view (e.g. 0-90 train, 90-100 val)."""
        if not 0 <= start <= stop <= 100:
            raise UsageError(f"percent range {start}-{stop} must satisfy 0 <= start <= stop <= 100")
        n = len(self.indices)
        return self._new(self.indices[round(n * start / 100) : round(n * stop / 100)])

    def first(self, count: int) -> View:
        return self._new(self.indices[: max(0, count)])

    def last(self, count: int) -> View:
        return self._new(
            self.indices[len(self.indices) - max(0, count) :] if count > 0 else self.indices[:0]
        )

    def shuffle(self, seed: int) -> View:
        return self._new(np.random.default_rng(seed).permutation(self.indices))

    def repeat(self, count: int) -> View:
        """Cycle the view until it has exactly ``count`` samples (or truncate it)."""
        if not len(self.indices):
            raise UsageError("cannot repeat an empty view")
        reps = -(-count // len(self.indices))
        return self._new(np.tile(self.indices, reps)[:count])

    def balanced(self, seed: int, per_class: int | None = None) -> View:
        """Class-balanced oversampling: every class present gets ``per_class`` samples (default: as
        many as the largest class), drawn with replacement where a class is smaller, then shuffled."""
        rng = np.random.default_rng(seed)
        labels = self.labels
        present = np.unique(labels)
        if not len(present):
            return self
        target = per_class or int(np.bincount(labels).max())
        parts = []
        for c in present:
            members = self.indices[labels == c]
            extra = rng.choice(members, size=max(0, target - len(members)), replace=True)
            parts.append(np.concatenate([rng.permutation(members)[:target], extra]))
        return self._new(rng.permutation(np.concatenate(parts)))
