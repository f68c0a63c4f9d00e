"""A tiny progress protocol, so the library never imports rich: the CLI adapts it."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total_samples: int, description: str) -> None: ...

    def advance(self, samples: int, nbytes: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """The default: report nothing."""

    def start(self, total_samples: int, description: str) -> None:
        pass

    def advance(self, samples: int, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        pass
