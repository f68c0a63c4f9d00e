"""What ``pack verify`` reports, local or remote."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing ``verify`` found wrong. ``where`` names the file or the sample."""

    kind: str
    where: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass
class VerifyReport:
    path: Path
    deep: bool
    samples_checked: int = 0
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_not_listed: int = 0
    #: what decoders said about samples that did decode (EXIF oddities, libtiff tags...)
    decoder_warnings: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    url: str | None = None  # a pack verified at a URL (``path`` is the local copy checked)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.url or str(self.path),
            "ok": self.ok,
            "deep": self.deep,
            "samples_checked": self.samples_checked,
            "files_checked": self.files_checked,
            "problems": [p.to_dict() for p in self.problems],
            "problems_not_listed": self.problems_not_listed,
            "decoder_warnings": [p.to_dict() for p in self.decoder_warnings],
            "seconds": round(self.seconds, 3),
        }
