"""What a convert leaves out and what it warns about: small records that travel from the scanner
and the shard writers to the report, the ``--json`` document and the manifest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: How many ignored files and warnings are listed by path (all are counted).
MAX_LISTED = 1000


@dataclass(frozen=True)
class Skipped:
    """A file left out of the pack, and why (reported by convert, recorded in the manifest)."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Finding:
    """Something a user would want to know before training (``kind`` is a stable short name)."""

    kind: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "message": self.message}


@dataclass
class Omissions:
    """Files that are not samples: every one counted by reason, the first ``MAX_LISTED`` listed."""

    listed: list[Skipped] = field(default_factory=list)
    by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(self.by_reason.values())

    def add(self, path: str, reason: str) -> None:
        self.by_reason[reason] += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(Skipped(path, reason))

    def summary(self) -> str:
        """``ignored 896 files: 780 at the root (no class), 52 extension .txt, ...``"""
        parts = [f"{n} {reason}" for reason, n in sorted(self.by_reason.items(), key=_by_count)]
        return f"ignored {self.count} file(s): " + ", ".join(parts)


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
