"""Fixtures of the command-line tests: a config with its own store in ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.helpers import kill_valkey, write_config


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    """A config in ``tmp_path`` (store in ``tmp_path/data``); any server left behind is killed."""
    path = write_config(tmp_path)
    try:
        yield path
    finally:
        kill_valkey(path)
