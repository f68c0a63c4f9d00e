"""A tiny progress protocol, so the library never imports rich: the CLI adapts it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``start`` once with the total (in ``unit``s: samples, shards, measurements), ``advance``
    as work is done (with the bytes it moved, 0 if none), ``finish`` at the end."""

    def start(self, total_samples: int, description: str, *, unit: str = "samples") -> None: ...

    def advance(self, samples: int, nbytes: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """The default: report nothing."""

    def start(self, total_samples: int, description: str, *, unit: str = "samples") -> None:
        pass

    def advance(self, samples: int, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        pass
