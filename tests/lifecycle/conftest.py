"""Lifecycle tests reuse the serving fixtures: one tiny trained + exported run per input kind."""
from __future__ import annotations

from tests.serving.conftest import exported_digits, exported_text  # noqa: F401 (fixtures)
