"""One channel loaded through the daemon's config loader, for the adapters' option tests.

``invsync.daemon.config.load_config`` checks every channel's ``options`` against its kind's
``Options`` Struct, so a bad option is refused at load (and by ``invsync check-config``) with
the key's path, before any adapter starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from invsync.core.config import Channel, ConfigError
from invsync.daemon.config import load_config

LOCATIONS = '[[locations]]\nid = "wh-east"\n[[locations]]\nid = "store-1"\n'


def load_channel(tmp_path: Path, kind: str, options: str, *, extra: str = "") -> Channel:
    """The one channel of a config whose ``[[channels]]`` block is ``kind`` with ``options``
    (an inline TOML table's inside) and ``extra`` lines (``url = ...``)."""
    path = tmp_path / "config.toml"
    path.write_text(
        LOCATIONS + f'[[channels]]\nid = "ch"\nkind = "{kind}"\n{extra}options = {{ {options} }}\n'
    )
    (channel,) = load_config(path).channels
    return channel


def refused(tmp_path: Path, kind: str, options: str, *, extra: str = "") -> ConfigError:
    """The ConfigError loading such a config raises (the test fails if it loads)."""
    with pytest.raises(ConfigError) as caught:
        load_channel(tmp_path, kind, options, extra=extra)
    return caught.value
