"""``invsync stock set/adjust/show/import``, run as a subprocess against a real embedded Valkey
per test, through a running daemon (``invsync run``) or ``--direct`` on its store."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.helpers import (
    Daemon,
    data_dir,
    http_get,
    invsync,
    metric,
    ok,
    show,
)

# --- stock set / adjust / show ---------------------------------------------------------------
#
# Each behaviour is checked both ways an operator changes stock: through the running daemon's
# API (the default), and with --direct on a stopped daemon's store.


@dataclass
class Cli:
    """The stock commands against ``config``: through ``daemon`` if one runs, else --direct."""

    config: Path
    daemon: Daemon | None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        changes = args[:2] in (("stock", "set"), ("stock", "adjust"))
        return invsync(self.config, *args, *(["--direct"] if changes and not self.daemon else []))

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"{args} exited {done.returncode}: {done.stderr}"
        return done.stdout

    def show(self, sku: str) -> dict[str, Any]:
        view: dict[str, Any] = json.loads(self.ok("stock", "show", sku, "--json"))
        if self.daemon is not None:  # what the CLI showed is what the daemon's API answers
            status, body = http_get(self.config, f"/v1/stock/{sku}")
            assert (status, json.loads(body)) == (200, view)
        return view

    def set(self, sku: str, location: str, qty: int, *more: str) -> dict[str, Any]:
        self.ok("stock", "set", sku, "--location", location, "--on-hand", str(qty), *more)
        return self.show(sku)

    def unknown(self, sku: str) -> bool:
        return self.run("stock", "show", sku).returncode == 1

    def events(self, kind: str, outcome: str) -> float:
        """How many events of ``kind`` the daemon counted with ``outcome``."""
        assert self.daemon is not None
        status, body = http_get(self.config, "/metrics")
        assert status == 200
        return metric(body.decode(), "invsync_events_total", kind=kind, outcome=outcome)


@pytest.fixture(params=["daemon", "direct"])
def cli(request: pytest.FixtureRequest, config: Path) -> Iterator[Cli]:
    """The commands through a running daemon, or --direct on the store with no daemon."""
    if request.param == "direct":
        yield Cli(config, None)
        return
    with Daemon(config) as daemon:
        daemon.wait_for("started")
        yield Cli(config, daemon)
        assert daemon.stop() == 0


def test_set_then_show_json_gives_the_spec_shape_and_each_channel_its_share(cli: Cli) -> None:
    cli.set("TEE", "wh-east", 30)
    cli.set("TEE", "wh-west", 3)
    view = cli.set("TEE", "store-sf", 4)

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
    if cli.daemon is not None:  # the three counts went through the daemon's intake
        assert cli.events("stock.counted", "applied") == 3


def test_cap_and_floor_bound_what_a_channel_shows(cli: Cli) -> None:
    view = cli.set("TEE", "wh-east", 100)
    assert view["channels"]["ebay"]["available"] == 20  # 50 of 100, capped at 20

    cli.set("CAP", "wh-east", 4)
    view = cli.set("CAP", "store-sf", 10)
    channels = {ch: c["available"] for ch, c in view["channels"].items()}
    # Walmart's pool (warehouses) is 4, below its floor of 5: it shows none.
    assert channels == {"web": 13, "amazon": 11, "ebay": 6, "walmart": 0}


def test_adjust_is_applied_and_versioned(cli: Cli) -> None:
    before = cli.set("TEE", "wh-east", 5)
    out = cli.ok("stock", "adjust", "TEE", "--location", "wh-east", "--delta", "-2")
    assert out.startswith("TEE  (version 2)")  # the view after the change
    after = cli.show("TEE")
    assert after["locations"]["wh-east"]["on_hand"] == 3
    assert after["version"] == before["version"] + 1
    if cli.daemon is not None:
        assert cli.events("stock.adjusted", "applied") == 1


def test_history_lists_the_latest_movements_newest_first(cli: Cli) -> None:
    cli.set("TEE", "wh-east", 5)
    cli.ok("stock", "adjust", "TEE", "--location", "wh-east", "--delta", "-2", "--reason", "shrink")
    rows = [json.loads(x) for x in cli.ok("stock", "history", "TEE", "--json").splitlines()]
    assert [(r["op"], r["from"], r["to"]) for r in rows] == [
        ("adjust", "5", "3"),
        ("count", "0", "5"),
    ]
    assert rows[0]["reason"] == "shrink"
    text = cli.ok("stock", "history", "TEE", "--count", "1")
    assert len(text.splitlines()) == 1 and "adjust" in text and "5 -> 3" in text
    assert cli.run("stock", "history", "NEVER").returncode == 1
    assert cli.run("stock", "history", "TEE", "--count", "0").returncode == 2


def test_adjust_below_zero_is_refused_and_changes_nothing(cli: Cli) -> None:
    before = cli.set("TEE", "wh-east", 5)
    done = cli.run("stock", "adjust", "TEE", "--location", "wh-east", "--delta", "-6")
    assert done.returncode == 1
    assert "NEGATIVE_STOCK" in done.stderr
    assert cli.show("TEE") == before
    if cli.daemon is not None:
        assert cli.events("stock.adjusted", "refused") == 1
        assert cli.events("stock.adjusted", "applied") == 0


@pytest.mark.parametrize(
    "command",
    [
        ["stock", "set", "TEE", "--location", "wh-north", "--on-hand", "3"],
        ["stock", "adjust", "TEE", "--location", "wh-north", "--delta", "3"],
    ],
)
def test_unknown_location_exits_2_and_applies_nothing(cli: Cli, command: list[str]) -> None:
    done = cli.run(*command)
    assert done.returncode == 2
    assert "wh-north" in done.stderr
    assert cli.unknown("TEE")


def test_show_of_an_unknown_sku_exits_1(cli: Cli) -> None:
    done = cli.run("stock", "show", "NEVER-STOCKED", "--json")
    assert done.returncode == 1
    assert "UNKNOWN_SKU" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("flag", ["--on-hand", "--damaged"])
def test_a_negative_count_exits_2_and_applies_nothing(cli: Cli, flag: str) -> None:
    done = cli.run("stock", "set", "TEE", "--location", "wh-east", flag, "-1")
    assert done.returncode == 2
    assert flag in done.stderr
    assert cli.unknown("TEE")


@pytest.mark.parametrize(
    "extra",
    [
        ["--damaged", "100000000000000"],  # beyond what the store keeps exactly
        ["--safety-stock", "1", "--event-id", "x" * 195],  # x...x:safety_stock is too long
    ],
)
def test_a_set_of_several_states_is_checked_whole_before_any_is_applied(
    cli: Cli, extra: list[str]
) -> None:
    done = cli.run("stock", "set", "TEE", "--location", "wh-east", "--on-hand", "5", *extra)
    assert done.returncode == 2
    assert cli.unknown("TEE")


def test_set_without_any_count_exits_2(cli: Cli) -> None:
    done = cli.run("stock", "set", "TEE", "--location", "wh-east")
    assert done.returncode == 2
    assert "--on-hand" in done.stderr


def test_event_id_makes_a_repeated_set_idempotent(cli: Cli) -> None:
    cli.set("TEE", "wh-east", 5)
    first = cli.set("TEE", "wh-east", 9, "--event-id", "count-42")
    again = cli.set("TEE", "wh-east", 9, "--event-id", "count-42")
    assert first["locations"]["wh-east"]["on_hand"] == 9
    assert again == first
    # Without an id every set is a new event.
    assert cli.set("TEE", "wh-east", 9)["version"] == first["version"] + 1
    if cli.daemon is not None:
        assert cli.events("stock.counted", "duplicate") == 1


def test_a_bundle_shows_what_its_components_can_build(cli: Cli) -> None:
    # KIT = 1 TEE + 2 CAP, counted per location: CAPs at wh-west have no TEE beside them.
    cli.set("TEE", "wh-east", 10)
    cli.set("CAP", "wh-east", 7)
    cli.set("CAP", "wh-west", 100)
    view = cli.show("KIT")
    assert view["sku"] == "KIT"
    assert view["bundle"] == {"components": {"TEE": 1, "CAP": 2}}
    channels = {ch: c["available"] for ch, c in view["channels"].items()}
    assert channels == {"web": 3, "amazon": 1, "ebay": 1, "walmart": 0}

    cli.ok("stock", "adjust", "CAP", "--location", "wh-east", "--delta", "5")
    assert cli.show("KIT")["channels"]["web"]["available"] == 6


def test_json_output_is_pure_json_and_text_output_is_a_table(cli: Cli) -> None:
    done = cli.run("stock", "set", "TEE", "--location", "wh-east", "--on-hand", "2")
    assert done.returncode == 0
    assert done.stdout.startswith("TEE  (version 1)")
    headers = [line.split() for line in done.stdout.splitlines()]
    assert ["location", "on_hand", "reserved", "available", "safety_stock", "damaged",
            "incoming"] in headers
    assert ["channel", "available", "pushed", "pushed", "at"] in headers
    shown = cli.run("stock", "show", "TEE", "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["sku"] == "TEE"  # the whole of stdout, nothing else


def test_the_store_persists_between_commands(config: Path) -> None:
    cli = Cli(config, None)
    cli.set("TEE", "wh-east", 11)
    # Each command started and stopped its own server: nothing is left running.
    assert not (data_dir(config) / "valkey.pid").exists()
    assert cli.show("TEE")["locations"]["wh-east"]["on_hand"] == 11


def test_a_change_with_direct_beside_a_running_daemon_warns_and_applies(config: Path) -> None:
    with Daemon(config) as daemon:
        daemon.wait_for("started")
        done = invsync(
            config, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "4", "--direct"
        )
        assert done.returncode == 0, done.stderr
        assert "warning: the daemon" in done.stderr and "is running" in done.stderr
        # Applied to the daemon's own store (not through its intake).
        assert Cli(config, daemon).show("TEE")["locations"]["wh-east"]["on_hand"] == 4
        assert Cli(config, daemon).events("stock.counted", "applied") == 0
        assert daemon.stop() == 0


# --- stock import ----------------------------------------------------------------------------


def _write_csv(folder: Path, text: str, name: str = "stock.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


GOOD_CSV = "sku,location,on_hand\nTEE,wh-east,12\nTEE,store-sf,3\nCAP,wh-west,40\n"


def test_import_applies_a_good_file_once(cli: Cli) -> None:
    csv_file = _write_csv(cli.config.parent, GOOD_CSV)
    out = cli.ok("stock", "import", str(csv_file))
    assert "3 applied, 0 already applied, 0 refused" in out
    tee, cap = cli.show("TEE"), cli.show("CAP")
    assert tee["locations"]["wh-east"]["on_hand"] == 12
    assert tee["locations"]["store-sf"]["available"] == 2
    assert cap["locations"]["wh-west"]["on_hand"] == 40
    if cli.daemon is not None:
        assert cli.events("stock.counted", "applied") == 3

    out = cli.ok("stock", "import", str(csv_file))
    assert "0 applied, 3 already applied, 0 refused" in out
    assert cli.show("TEE") == tee
    assert cli.show("CAP") == cap
    if cli.daemon is not None:
        assert cli.events("stock.counted", "duplicate") == 3


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


def _import_bad(cli: Cli, bad_row: str, line: int, message: str) -> None:
    csv_file = _write_csv(
        cli.config.parent, "sku,location,on_hand\nGOOD,wh-east,5\n" + bad_row + "CAP,wh-west,1\n"
    )
    done = cli.run("stock", "import", str(csv_file))
    assert done.returncode == 2, done.stderr
    assert f"line {line}:" in done.stderr
    assert message in done.stderr
    assert "nothing imported" in done.stderr
    assert cli.unknown("GOOD")
    assert cli.unknown("CAP")


@pytest.mark.parametrize("case", BAD_CSV)
def test_import_of_a_file_with_one_bad_row_applies_nothing(config: Path, case: str) -> None:
    _import_bad(Cli(config, None), *BAD_CSV[case])


@pytest.mark.parametrize("case", ["unknown location", "duplicate sku and location"])
def test_import_of_a_bad_file_through_the_daemon_applies_nothing(config: Path, case: str) -> None:
    with Daemon(config) as daemon:
        daemon.wait_for("started")
        cli = Cli(config, daemon)
        _import_bad(cli, *BAD_CSV[case])
        assert cli.events("stock.counted", "accepted") == 0  # not one row reached the daemon
        assert daemon.stop() == 0


def test_import_with_a_wrong_header_applies_nothing(cli: Cli) -> None:
    csv_file = _write_csv(cli.config.parent, "sku,loc,qty\nGOOD,wh-east,5\n")
    done = cli.run("stock", "import", str(csv_file))
    assert done.returncode == 2
    assert "line 1:" in done.stderr
    assert "sku,location,on_hand" in done.stderr
    assert cli.unknown("GOOD")


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
