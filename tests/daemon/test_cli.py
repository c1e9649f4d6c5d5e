"""The ``invsync`` command line, run as a subprocess against a real embedded Valkey per test."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.helpers import (
    CONFIG,
    REPO,
    data_dir,
    invsync,
    kill_valkey,
    ok,
    on_hand,
    show,
    write_config,
)


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    """A config in ``tmp_path`` (store in ``tmp_path/data``); any server left behind is killed."""
    path = write_config(tmp_path)
    try:
        yield path
    finally:
        kill_valkey(path)


# --- check-config ---------------------------------------------------------------------------


def test_check_config_accepts_the_shipped_config() -> None:
    done = invsync(REPO / "config.toml", "check-config")
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
    assert "3 location(s), 6 channel(s), 1 bundle(s)" in done.stdout


def test_check_config_accepts_a_written_config(config: Path) -> None:
    out = ok(config, "check-config")
    assert "OK" in out
    assert "3 location(s), 4 channel(s), 1 bundle(s)" in out
    assert not data_dir(config).exists(), "check-config must not start a store"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


BROKEN = {
    "unknown key": (CONFIG + "\n[server]\nprot = 8080\n", ["server.prot", "unknown key"]),
    "bad percent": (
        CONFIG.replace("percent = 50", "percent = 150"),
        ["channels[2].percent", "between 0 and 100", "150"],
    ),
    "unknown location in a channel": (
        CONFIG.replace('["wh-east", "wh-west"]', '["wh-east", "wh-north"]'),
        ["channels[3].locations[1]", "unknown location 'wh-north'"],
    ),
    "TOML syntax": (
        CONFIG.replace("buffer = 2", "buffer = = 2"),
        [f"line {_line_of(CONFIG, 'buffer = 2')}", "invalid TOML"],
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_check_config_names_the_key_and_exits_2(tmp_path: Path, case: str) -> None:
    text, fragments = BROKEN[case]
    config = write_config(tmp_path, text)
    done = invsync(config, "check-config")
    assert done.returncode == 2
    assert done.stdout == ""
    for fragment in fragments:
        assert fragment in done.stderr
    assert not data_dir(config).exists()


# --- stock set / adjust / show ---------------------------------------------------------------


def test_set_then_show_json_gives_the_spec_shape_and_each_channel_its_share(
    config: Path,
) -> None:
    on_hand(config, "TEE", "wh-east", 30)
    on_hand(config, "TEE", "wh-west", 3)
    view = on_hand(config, "TEE", "store-sf", 4)

    assert set(view) == {"sku", "version", "locations", "channels"}
    assert view["sku"] == "TEE"
    assert view["version"] == 3
    assert view["locations"]["wh-east"]["on_hand"] == 30
    store = view["locations"]["store-sf"]
    assert (store["on_hand"], store["reserved"], store["available"]) == (4, 0, 3)
    assert store["safety_stock"] == 1
    for loc in view["locations"].values():
        assert {"on_hand", "reserved", "available"} <= set(loc)
    # Pool of all locations: 30 + 3 + 3 = 36; the warehouses alone: 33.
    assert {ch: c["available"] for ch, c in view["channels"].items()} == {
        "web": 36,
        "amazon": 34,  # buffer 2
        "ebay": 18,  # 50 %
        "walmart": 33,  # warehouses only
    }
    for c in view["channels"].values():
        assert set(c) == {"available", "pushed", "pushed_version"}


def test_cap_and_floor_bound_what_a_channel_shows(config: Path) -> None:
    view = on_hand(config, "TEE", "wh-east", 100)
    assert view["channels"]["ebay"]["available"] == 20  # 50 of 100, capped at 20

    on_hand(config, "CAP", "wh-east", 4)
    view = on_hand(config, "CAP", "store-sf", 10)
    channels = {ch: c["available"] for ch, c in view["channels"].items()}
    # Walmart's pool (warehouses) is 4, below its floor of 5: it shows none.
    assert channels == {"web": 13, "amazon": 11, "ebay": 6, "walmart": 0}


def test_adjust_is_applied_and_versioned(config: Path) -> None:
    before = on_hand(config, "TEE", "wh-east", 5)
    ok(config, "stock", "adjust", "TEE", "--location", "wh-east", "--delta", "-2")
    after = show(config, "TEE")
    assert after["locations"]["wh-east"]["on_hand"] == 3
    assert after["version"] == before["version"] + 1


def test_adjust_below_zero_is_refused_and_changes_nothing(config: Path) -> None:
    before = on_hand(config, "TEE", "wh-east", 5)
    done = invsync(config, "stock", "adjust", "TEE", "--location", "wh-east", "--delta", "-6")
    assert done.returncode == 1
    assert "NEGATIVE_STOCK" in done.stderr
    assert show(config, "TEE") == before


@pytest.mark.parametrize(
    "command",
    [
        ["stock", "set", "TEE", "--location", "wh-north", "--on-hand", "3"],
        ["stock", "adjust", "TEE", "--location", "wh-north", "--delta", "3"],
    ],
)
def test_unknown_location_exits_2_and_applies_nothing(config: Path, command: list[str]) -> None:
    done = invsync(config, *command)
    assert done.returncode == 2
    assert "wh-north" in done.stderr
    assert invsync(config, "stock", "show", "TEE").returncode == 1


def test_show_of_an_unknown_sku_exits_1(config: Path) -> None:
    done = invsync(config, "stock", "show", "NEVER-STOCKED", "--json")
    assert done.returncode == 1
    assert "UNKNOWN_SKU" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("flag", ["--on-hand", "--damaged"])
def test_a_negative_count_exits_2_and_applies_nothing(config: Path, flag: str) -> None:
    done = invsync(config, "stock", "set", "TEE", "--location", "wh-east", flag, "-1")
    assert done.returncode == 2
    assert flag in done.stderr
    assert invsync(config, "stock", "show", "TEE").returncode == 1


@pytest.mark.parametrize(
    "extra",
    [
        ["--damaged", "100000000000000"],  # beyond what the store keeps exactly
        ["--safety-stock", "1", "--event-id", "x" * 195],  # x...x:safety_stock is too long
    ],
)
def test_a_set_of_several_states_is_checked_whole_before_any_is_applied(
    config: Path, extra: list[str]
) -> None:
    done = invsync(config, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "5", *extra)
    assert done.returncode == 2
    assert invsync(config, "stock", "show", "TEE").returncode == 1


def test_set_without_any_count_exits_2(config: Path) -> None:
    done = invsync(config, "stock", "set", "TEE", "--location", "wh-east")
    assert done.returncode == 2
    assert "--on-hand" in done.stderr


def test_event_id_makes_a_repeated_set_idempotent(config: Path) -> None:
    on_hand(config, "TEE", "wh-east", 5)
    first = on_hand(config, "TEE", "wh-east", 9, "--event-id", "count-42")
    again = on_hand(config, "TEE", "wh-east", 9, "--event-id", "count-42")
    assert first["locations"]["wh-east"]["on_hand"] == 9
    assert again == first
    # Without an id every set is a new event.
    assert on_hand(config, "TEE", "wh-east", 9)["version"] == first["version"] + 1


def test_a_bundle_shows_what_its_components_can_build(config: Path) -> None:
    # KIT = 1 TEE + 2 CAP, counted per location: CAPs at wh-west have no TEE beside them.
    on_hand(config, "TEE", "wh-east", 10)
    on_hand(config, "CAP", "wh-east", 7)
    on_hand(config, "CAP", "wh-west", 100)
    view = show(config, "KIT")
    assert view["sku"] == "KIT"
    assert view["bundle"] == {"components": {"TEE": 1, "CAP": 2}}
    channels = {ch: c["available"] for ch, c in view["channels"].items()}
    assert channels == {"web": 3, "amazon": 1, "ebay": 1, "walmart": 0}

    ok(config, "stock", "adjust", "CAP", "--location", "wh-east", "--delta", "5")
    assert show(config, "KIT")["channels"]["web"]["available"] == 6


def test_json_output_is_pure_json_and_text_output_is_a_table(config: Path) -> None:
    done = invsync(config, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "2")
    assert done.returncode == 0
    assert done.stdout.startswith("TEE  (version 1)")
    assert "channel availability" in done.stdout
    shown = invsync(config, "stock", "show", "TEE", "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["sku"] == "TEE"  # the whole of stdout, nothing else


def test_the_store_persists_between_commands(config: Path) -> None:
    on_hand(config, "TEE", "wh-east", 11)
    # Each command started and stopped its own server: nothing is left running.
    assert not (data_dir(config) / "valkey.pid").exists()
    assert show(config, "TEE")["locations"]["wh-east"]["on_hand"] == 11


# --- stock import ----------------------------------------------------------------------------


def _write_csv(folder: Path, text: str, name: str = "stock.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


GOOD_CSV = "sku,location,on_hand\nTEE,wh-east,12\nTEE,store-sf,3\nCAP,wh-west,40\n"


def test_import_applies_a_good_file_once(config: Path) -> None:
    csv_file = _write_csv(config.parent, GOOD_CSV)
    out = ok(config, "stock", "import", str(csv_file))
    assert "3 applied, 0 already applied, 0 refused" in out
    tee, cap = show(config, "TEE"), show(config, "CAP")
    assert tee["locations"]["wh-east"]["on_hand"] == 12
    assert tee["locations"]["store-sf"]["available"] == 2
    assert cap["locations"]["wh-west"]["on_hand"] == 40

    out = ok(config, "stock", "import", str(csv_file))
    assert "0 applied, 3 already applied, 0 refused" in out
    assert show(config, "TEE") == tee
    assert show(config, "CAP") == cap


BAD_CSV = {
    "negative quantity": ("TEE,wh-east,-4\n", 3, "on_hand must be an integer"),
    "non-number quantity": ("TEE,wh-east,12x\n", 3, "on_hand must be an integer"),
    "superscript digit": ("TEE,wh-east,\u00b2\n", 3, "on_hand must be an integer"),
    "quantity too large": ("TEE,wh-east,100000000000000\n", 3, "on_hand must be"),
    "absurdly long quantity": ("TEE,wh-east," + "9" * 5000 + "\n", 3, "on_hand must be"),
    "unknown location": ("TEE,wh-north,4\n", 3, "unknown location 'wh-north'"),
    "duplicate sku and location": ("GOOD,wh-east,6\n", 3, "already given on line 2"),
    "wrong column count": ("TEE,wh-east\n", 3, "expected 3 columns"),
    "bad sku": ("TE E,wh-east,1\n", 3, "SKU"),
}


@pytest.mark.parametrize("case", BAD_CSV)
def test_import_of_a_file_with_one_bad_row_applies_nothing(config: Path, case: str) -> None:
    bad_row, line, message = BAD_CSV[case]
    csv_file = _write_csv(
        config.parent, "sku,location,on_hand\nGOOD,wh-east,5\n" + bad_row + "CAP,wh-west,1\n"
    )
    done = invsync(config, "stock", "import", str(csv_file))
    assert done.returncode == 2, done.stderr
    assert f"line {line}:" in done.stderr
    assert message in done.stderr
    assert "nothing imported" in done.stderr
    assert invsync(config, "stock", "show", "GOOD").returncode == 1
    assert invsync(config, "stock", "show", "CAP").returncode == 1


def test_import_with_a_wrong_header_applies_nothing(config: Path) -> None:
    csv_file = _write_csv(config.parent, "sku,loc,qty\nGOOD,wh-east,5\n")
    done = invsync(config, "stock", "import", str(csv_file))
    assert done.returncode == 2
    assert "line 1:" in done.stderr
    assert "sku,location,on_hand" in done.stderr
    assert invsync(config, "stock", "show", "GOOD").returncode == 1


@pytest.mark.slow
def test_import_of_100_000_rows(config: Path) -> None:
    locations = ("wh-east", "wh-west", "store-sf")
    rows = ["sku,location,on_hand"]
    rows += [f"SKU-{i // 3},{locations[i % 3]},{i % 997}" for i in range(100_000)]
    csv_file = _write_csv(config.parent, "\n".join(rows) + "\n", "big.csv")

    start = time.perf_counter()
    out = ok(config, "stock", "import", str(csv_file))
    elapsed = time.perf_counter() - start
    print(f"\nimported 100,000 rows in {elapsed:.1f} s")  # info only, not asserted

    assert "100000 applied, 0 already applied, 0 refused" in out
    for i in (0, 1, 2, 50_000, 99_999):
        view = show(config, f"SKU-{i // 3}")
        assert view["locations"][locations[i % 3]]["on_hand"] == i % 997
