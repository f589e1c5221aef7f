"""The client's built-in defaults and the environment variables that override them.

Declared once here; :mod:`client.config` resolves them (flags, environment,
profile, built-in) and re-exports them. A module of its own, without
dataclasses or file reading, so ``squeezer --help`` can show them in its
option texts without importing ``config``.
"""

from __future__ import annotations

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"

DEFAULT_ALGORITHM = "zstd"
DEFAULT_PARALLEL = 8
PARALLEL_RANGE = (1, 64)
ALGORITHM_ENV = "SQUEEZER_ALGORITHM"
LEVEL_ENV = "SQUEEZER_LEVEL"
PARALLEL_ENV = "SQUEEZER_PARALLEL"
