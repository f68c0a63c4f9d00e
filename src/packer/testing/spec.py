"""What the shared suites are parametrized by: a backend and its options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BackendSpec:
    """A backend name and the options to convert with."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
