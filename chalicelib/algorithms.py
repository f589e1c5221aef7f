"""The compression formats the service offers, their levels and file extensions.

Its own small module (no dataclass-heavy domain objects, no hashing) so the
CLI can name the algorithms in its options without importing
:mod:`chalicelib.domain`; ``domain`` re-exports everything here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class AlgorithmSpec:
    """What the service promises about a compression format (the codec itself is in codecs.py)."""

    levels: tuple[int, int]
    default_level: int
    extension: str  # of result files, with the dot


class Algorithm(str, enum.Enum):
    """A compression format the service can produce."""

    ZSTD = "zstd"
    BROTLI = "brotli"
    GZIP = "gzip"

    @property
    def spec(self) -> AlgorithmSpec:
        return ALGORITHM_SPECS[self]

    @property
    def level_range(self) -> tuple[int, int]:
        return self.spec.levels

    @property
    def default_level(self) -> int:
        return self.spec.default_level

    @property
    def extension(self) -> str:
        """File name suffix of results, with the dot."""
        return self.spec.extension

    def check_level(self, level: object) -> int:
        """``level`` if it is an integer in this format's range, else InvalidLevel."""
        low, high = self.level_range
        if isinstance(level, bool) or not isinstance(level, int) or not low <= level <= high:
            raise InvalidLevel(f"level must be an integer from {low} to {high} for {self.value}, got {level!r}")
        return level


class InvalidLevel(ValueError):
    """A compression level outside its format's range."""


ALGORITHM_SPECS: dict[Algorithm, AlgorithmSpec] = {
    Algorithm.ZSTD: AlgorithmSpec(levels=(1, 22), default_level=3, extension=".zst"),
    Algorithm.BROTLI: AlgorithmSpec(levels=(0, 11), default_level=5, extension=".br"),
    Algorithm.GZIP: AlgorithmSpec(levels=(1, 9), default_level=6, extension=".gz"),
}
