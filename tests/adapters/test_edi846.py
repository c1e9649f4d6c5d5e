"""The EDI X12 846 file channel: envelope, control numbers, atomic files, refused SKUs.

A small X12 reader below checks what the adapter writes the way a partner's translator would:
ISA read by its fixed offsets (X12 ISA: 106 characters with the terminator, delimiters at fixed
positions; Oracle "Sun B2B Suite ASC X12 OTD Library", "Steps Taken to Check for ISA Segment
Errors"), then segments split on the terminator the ISA declares, control numbers paired
(ISA13=IEA02, GS06=GE02, ST02=SE02), SE01 counted, CTT checked.
"""

from __future__ import annotations

import asyncio
import errno
import os
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from invsync.adapters import edi846
from invsync.adapters.base import AdapterContext, BadWebhook, Permanent, Retryable, Update
from invsync.adapters.edi846 import (
    Edi846Adapter,
    Interchange,
    Options,
    control_key,
    create,
    render,
    sku_problem,
)
from invsync.adapters.registry import make_adapter, options_type
from invsync.core.config import Channel
from tests.adapters.channel_config import load_channel, refused

NOW = datetime(2026, 3, 14, 9, 26, tzinfo=UTC).timestamp()

# -- a small X12 reader ------------------------------------------------------------------------

# Offsets of the element separator inside a well-formed ISA (after "ISA" at 0..2).
_ISA_SEPARATORS = (3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103)


@dataclass
class Parsed:
    isa: list[str]
    segments: list[list[str]]  # every segment after ISA, split into elements
    items: list[tuple[str, int]]
    #: the optional heading segments between BIA and the first LIN (DTM, REF, N1)
    heading: list[list[str]]
    element: str
    component: str
    terminator: str


def parse_x12(text: str) -> Parsed:
    """Read one 846 interchange; AssertionError naming what is wrong."""
    assert text.startswith("ISA"), "an interchange starts with ISA"
    element = text[3]
    for offset in _ISA_SEPARATORS:
        assert text[offset] == element, f"ISA element separator expected at offset {offset}"
    component, terminator = text[104], text[105]
    assert len({element, component, terminator}) == 3, "delimiters must differ"
    isa_raw = text[:105]
    isa = isa_raw.split(element)
    assert len(isa) == 17, f"ISA has 16 elements, got {len(isa) - 1}"
    assert len(isa_raw) + 1 == 106
    rest = text[106:]
    raw_segments = [s.strip("\r\n") for s in rest.split(terminator)]
    assert raw_segments[-1] == "", "the last segment must end with the terminator"
    segments = [s.split(element) for s in raw_segments[:-1]]
    ids = [s[0] for s in segments]
    assert ids[0] == "GS" and ids[-2] == "GE" and ids[-1] == "IEA", ids
    gs, ge, iea = segments[0], segments[-2], segments[-1]
    assert gs[1] == "IB", "846 travels in functional group IB"
    assert iea[2] == isa[13], "IEA02 must equal ISA13"
    assert iea[1] == "1", "one functional group"
    assert ge[2] == gs[6], "GE02 must equal GS06"
    assert ge[1] == "1", "one transaction set"
    st_seg, se = segments[1], segments[-3]
    assert st_seg[0] == "ST" and st_seg[1] == "846"
    assert se[0] == "SE" and se[2] == st_seg[2], "SE02 must equal ST02"
    transaction = segments[1:-2]
    assert int(se[1]) == len(transaction), f"SE01 {se[1]} != {len(transaction)} segments"
    assert 4 <= len(st_seg[2]) <= 9
    bia = transaction[1]
    assert bia[0] == "BIA" and bia[1] == "00"
    items: list[tuple[str, int]] = []
    body = transaction[2:-2]
    heading: list[list[str]] = []
    while body and body[0][0] != "LIN":
        heading.append(body.pop(0))
    # The 846 heading order after BIA: DTM (050), REF (060), the N1 loop (080).
    order = [_HEADING.index(segment[0]) for segment in heading]
    assert order == sorted(order), f"heading segments out of order: {heading}"
    for segment in heading:
        assert len(segment) > 2 and segment[-1], f"no trailing empty element in {segment}"
    assert len(body) % 2 == 0
    for lin, qty in zip(body[::2], body[1::2], strict=True):
        assert lin[:3] == ["LIN", "", "SK"] and len(lin) == 4, lin
        assert qty[0] == "QTY" and qty[1] == "33" and qty[3] == "EA", qty
        items.append((lin[3], int(qty[2])))
    ctt = transaction[-2]
    assert ctt[0] == "CTT" and int(ctt[1]) == len(items), "CTT01 counts the LIN segments"
    return Parsed(isa=isa, segments=segments, items=items, heading=heading, element=element,
                  component=component, terminator=terminator)


_HEADING = ("DTM", "REF", "N1")


def control_of(parsed: Parsed) -> int:
    return int(parsed.isa[13])


# -- fixtures ----------------------------------------------------------------------------------


def edi_channel(folder: str = "outbox", **options: Any) -> Channel:
    opts: dict[str, Any] = {
        "folder": folder,
        "sender_id": "INVSYNC",
        "receiver_id": "ACMERETAIL",
    }
    opts.update(options)
    return Channel(id="acme-edi", kind="edi846", options=opts)


def make(tmp_path: Path, redis: aioredis.Redis | None = None, **options: Any) -> Edi846Adapter:
    return Edi846Adapter(edi_channel(**options), redis=redis, base_dir=tmp_path,
                         wall=lambda: NOW)


def edi_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.edi"))


UPDATES = [
    Update(sku="TEE-BLK-M", available=7, version=3),
    Update(sku="TEE-BLK-L", available=0, version=9),
    Update(sku="MUG/11OZ", available=120, version=1),
]


# -- envelope ----------------------------------------------------------------------------------


async def test_push_writes_one_valid_846_interchange(tmp_path: Path) -> None:
    adapter = make(tmp_path)
    results = await adapter.push(UPDATES)

    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    (path,) = edi_files(tmp_path / "outbox")
    assert path.name == "846_acme-edi_000000001.edi"
    text = path.read_text("ascii")
    assert text.index("~") == 105, "ISA is 106 characters with its terminator"
    parsed = parse_x12(text)
    assert parsed.items == [("TEE-BLK-M", 7), ("TEE-BLK-L", 0), ("MUG/11OZ", 120)]
    assert (parsed.element, parsed.component, parsed.terminator) == ("*", ">", "~")
    isa = parsed.isa
    assert isa[5] == "ZZ" and isa[6] == "INVSYNC".ljust(15)
    assert isa[7] == "ZZ" and isa[8] == "ACMERETAIL".ljust(15)
    assert (isa[9], isa[10]) == ("260314", "0926")
    assert (isa[11], isa[12], isa[13], isa[15]) == ("U", "00401", "000000001", "P")
    gs = parsed.segments[0]
    assert gs == ["GS", "IB", "INVSYNC", "ACMERETAIL", "20260314", "0926", "1", "X", "004010"]
    bia = parsed.segments[2]
    assert bia == ["BIA", "00", "MM", "000000001", "20260314", "0926"]
    assert "\n" not in text


async def test_envelope_options_reach_the_isa_and_gs(tmp_path: Path) -> None:
    adapter = make(
        tmp_path, sender_qualifier="01", receiver_qualifier="12", gs_sender="INV-GS",
        gs_receiver="ACME-GS", test=True, ack_requested=True, report_type="SI",
        line_breaks=True,
    )
    await adapter.push(UPDATES[:1])
    (path,) = edi_files(tmp_path / "outbox")
    text = path.read_text("ascii")
    assert text.count("\n") == 10, "one line per segment when asked"
    parsed = parse_x12(text)
    assert (parsed.isa[5], parsed.isa[7], parsed.isa[14], parsed.isa[15]) == ("01", "12", "1", "T")
    assert parsed.segments[0][2:4] == ["INV-GS", "ACME-GS"]
    assert parsed.segments[2][2] == "SI"


# -- control numbers ---------------------------------------------------------------------------


async def test_control_numbers_increase_across_pushes_and_restarts_in_file_mode(
    tmp_path: Path,
) -> None:
    first = make(tmp_path)
    for _ in range(3):
        await first.push(UPDATES[:1])
    second = make(tmp_path)  # a restart: a new adapter on the same folder
    await second.push(UPDATES[:2])
    controls = [control_of(parse_x12(p.read_text("ascii"))) for p in
                edi_files(tmp_path / "outbox")]
    assert controls == [1, 2, 3, 4]
    assert (tmp_path / "outbox" / ".846_acme-edi.control").read_text().strip() == "4"


async def test_file_mode_never_reuses_a_number_when_the_control_file_is_lost(
    tmp_path: Path,
) -> None:
    adapter = make(tmp_path)
    await adapter.push(UPDATES[:1])
    await adapter.push(UPDATES[:1])
    (tmp_path / "outbox" / ".846_acme-edi.control").unlink()
    await make(tmp_path).push(UPDATES[:1])
    names = [p.name for p in edi_files(tmp_path / "outbox")]
    assert names[-1] == "846_acme-edi_000000003.edi"


async def test_control_numbers_increase_across_restarts_with_redis(
    tmp_path: Path, redis: aioredis.Redis
) -> None:
    await make(tmp_path, redis).push(UPDATES[:1])
    await make(tmp_path, redis).push(UPDATES[:1])  # a restart
    await make(tmp_path, redis).push(UPDATES[:1])
    controls = [control_of(parse_x12(p.read_text("ascii"))) for p in
                edi_files(tmp_path / "outbox")]
    assert controls == [1, 2, 3]
    assert int(await redis.get(control_key("acme-edi"))) == 3
    assert control_key("acme-edi") == "adapter:{acme-edi}:isa_control"
    assert not (tmp_path / "outbox" / ".846_acme-edi.control").exists(), "Redis holds them"


async def test_redis_control_number_wraps_after_nine_digits(
    tmp_path: Path, redis: aioredis.Redis
) -> None:
    await redis.set(control_key("acme-edi"), edi846.MAX_CONTROL - 1)
    adapter = make(tmp_path, redis)
    await adapter.push(UPDATES[:1])
    await adapter.push(UPDATES[:1])
    controls = [control_of(parse_x12(p.read_bytes().decode())) for p in adapter.written]
    assert controls == [edi846.MAX_CONTROL, 1]


async def test_concurrent_pushes_of_two_adapters_never_share_a_number(tmp_path: Path) -> None:
    one, two = make(tmp_path), make(tmp_path)
    await asyncio.gather(*(a.push(UPDATES) for a in (one, two) * 5))
    controls = sorted(control_of(parse_x12(p.read_text("ascii"))) for p in
                      edi_files(tmp_path / "outbox"))
    assert controls == list(range(1, 11))


async def test_redis_down_is_retryable(tmp_path: Path) -> None:
    broken = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                            retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(Retryable, match="control number"):
            await make(tmp_path, broken).push(UPDATES)
    finally:
        await broken.aclose()
    assert edi_files(tmp_path / "outbox") == []


# -- refused SKUs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sku",
    ["BAD*SKU", "BAD~SKU", "BAD>SKU", "BAD^SKU", "TAB\tSKU", "CAFÉ-1", "X" * 49, " LEAD"],
)
async def test_skus_x12_cannot_carry_are_permanent_and_the_rest_written(
    tmp_path: Path, sku: str
) -> None:
    adapter = make(tmp_path)
    results = await adapter.push([*UPDATES[:2], Update(sku=sku, available=3, version=1)])

    assert [r.outcome for r in results] == ["ok", "ok", "permanent"]
    assert results[2].error is not None and "EDI 846" in results[2].error
    (path,) = edi_files(tmp_path / "outbox")
    assert parse_x12(path.read_text("ascii")).items == [("TEE-BLK-M", 7), ("TEE-BLK-L", 0)]


async def test_a_negative_quantity_is_permanent(tmp_path: Path) -> None:
    results = await make(tmp_path).push([Update(sku="A", available=-1, version=1), UPDATES[0]])
    assert [r.outcome for r in results] == ["permanent", "ok"]
    assert "negative" in (results[0].error or "")


async def test_a_batch_of_only_refused_skus_writes_no_file_and_takes_no_number(
    tmp_path: Path,
) -> None:
    adapter = make(tmp_path)
    results = await adapter.push([Update(sku="A*B", available=1, version=1)])
    assert [r.outcome for r in results] == ["permanent"]
    assert not (tmp_path / "outbox").exists() or edi_files(tmp_path / "outbox") == []
    await adapter.push(UPDATES[:1])
    (path,) = edi_files(tmp_path / "outbox")
    assert control_of(parse_x12(path.read_text("ascii"))) == 1


# -- filesystem --------------------------------------------------------------------------------


async def test_a_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = make(tmp_path)
    await adapter.push(UPDATES[:1])
    real_write = os.write

    def half_then_disk_full(fd: int, data: Any) -> int:
        if len(data) > 40:
            real_write(fd, bytes(data[:40]))  # a partial write lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(edi846.os, "write", half_then_disk_full)
    with pytest.raises(Retryable, match="disk full"):
        await adapter.push(UPDATES)
    monkeypatch.undo()

    folder = tmp_path / "outbox"
    visible = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    assert visible == ["846_acme-edi_000000001.edi"], "no partial interchange is visible"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")], "temp file removed"
    for path in edi_files(folder):
        parse_x12(path.read_text("ascii"))  # every visible file is complete
    await adapter.push(UPDATES[:1])
    assert [control_of(parse_x12(p.read_text("ascii"))) for p in edi_files(folder)] == [1, 3], (
        "the failed interchange's number is a gap, never reused"
    )


async def test_permission_denied_is_retryable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = make(tmp_path)
    real_open = os.open

    def refuse_tmp(path: Any, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(edi846.os, "open", refuse_tmp)
    with pytest.raises(Retryable, match="permission denied"):
        await adapter.push(UPDATES)
    assert edi_files(tmp_path / "outbox") == []


async def test_the_folder_is_made_relative_to_the_config_folder(tmp_path: Path) -> None:
    adapter = make(tmp_path, folder="edi/out/acme")
    await adapter.push(UPDATES[:1])
    assert len(edi_files(tmp_path / "edi" / "out" / "acme")) == 1
    absolute = make(tmp_path, folder=str(tmp_path / "abs"))
    await absolute.push(UPDATES[:1])
    assert len(edi_files(tmp_path / "abs")) == 1


async def test_a_folder_path_naming_a_file_is_permanent(tmp_path: Path) -> None:
    (tmp_path / "outbox").write_text("not a folder")
    with pytest.raises(Permanent, match="not a directory"):
        await make(tmp_path).push(UPDATES)


async def test_a_folder_that_cannot_be_made_yet_is_retryable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unmounted(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", unmounted)
    with pytest.raises(Retryable, match="cannot create the EDI folder"):
        await make(tmp_path, folder="share/out").push(UPDATES)


# -- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"folder": ""}, "options.folder"),
        ({"sender_id": ""}, "options.sender_id"),
        ({"receiver_id": "X" * 16}, "options.receiver_id"),
        ({"sender_id": "A*B"}, "options.sender_id"),
        ({"sender_qualifier": "Z"}, "options.sender_qualifier"),
        ({"gs_sender": "A"}, "options.gs_sender"),
        ({"test": "yes"}, "options.test"),
        ({"report_type": "M"}, "options.report_type"),
    ],
)
def test_bad_config_names_the_option(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make(tmp_path, **options)


# -- heading segments a partner's guide asks for ------------------------------------------------

PARTNER = {
    "dtm": True,
    "dtm_qualifier": "405",
    "ref": [{"qualifier": "IA", "value": "V-10042"}, {"qualifier": "DP", "value": "042"}],
    "n1": [
        {"code": "SF", "name": "Acme DC East", "id_qualifier": "92", "id": "DC01"},
        {"code": "ST", "name": "Retail Partner"},
        {"code": "BY", "id_qualifier": "1", "id": "0123456789"},
    ],
}


async def test_ref_n1_and_dtm_are_written_after_bia_in_order_and_counted(
    tmp_path: Path,
) -> None:
    adapter = make(tmp_path, **PARTNER)
    assert [r.outcome for r in await adapter.push(UPDATES)] == ["ok"] * 3

    (path,) = edi_files(tmp_path / "outbox")
    parsed = parse_x12(path.read_text("ascii"))  # SE01 checked there, with the new segments
    assert parsed.heading == [
        ["DTM", "405", "20260314", "0926"],
        ["REF", "IA", "V-10042"],
        ["REF", "DP", "042"],
        ["N1", "SF", "Acme DC East", "92", "DC01"],
        ["N1", "ST", "Retail Partner"],
        ["N1", "BY", "", "1", "0123456789"],
    ]
    assert parsed.items == [("TEE-BLK-M", 7), ("TEE-BLK-L", 0), ("MUG/11OZ", 120)]
    transaction = parsed.segments[1:-2]
    assert [s[0] for s in transaction[:2]] == ["ST", "BIA"]
    assert int(transaction[-1][1]) == 2 + 6 + 2 * 3 + 2  # ST BIA, heading, LIN/QTY, CTT SE


async def test_without_partner_options_the_heading_is_st_and_bia_only(tmp_path: Path) -> None:
    adapter = make(tmp_path, dtm_qualifier="405")  # a qualifier alone writes no DTM
    await adapter.push(UPDATES)
    (path,) = edi_files(tmp_path / "outbox")
    assert parse_x12(path.read_text("ascii")).heading == []


def test_partner_options_load_from_toml(tmp_path: Path) -> None:
    text = (
        EDI + ', dtm = true, ref = [{ qualifier = "IA", value = "V-10042" }], '
        'n1 = [{ code = "SF", name = "Acme DC", id_qualifier = "92", id = "DC01" }]'
    )
    options = msgspec.convert(load_channel(tmp_path, "edi846", text).options, Options)
    envelope = options.envelope()
    assert envelope.dtm_qualifier == "097"  # the default: transaction creation
    assert envelope.refs == (("IA", "V-10042"),)
    assert envelope.parties == (("SF", "Acme DC", "92", "DC01"),)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        (', ref = [{ qualifier = "IA", value = "A*B" }]', "ref[0].value"),
        (', ref = [{ qualifier = "IA", value = "' + "9" * 31 + '" }]', "ref[0].value"),
        (', ref = [{ qualifier = "I", value = "1" }]', "ref[0].qualifier"),
        (', ref = [{ qualifier = "IA" }]', "ref[0].value"),
        (', ref = [' + ", ".join(['{ qualifier = "IA", value = "1" }'] * 13) + "]", "ref"),
        (', n1 = [{ code = "ST", name = " Acme" }]', "n1[0].name"),
        (', n1 = [{ code = "ST", name = "Acme", id = "DC01" }]', "n1[0]"),
        (', n1 = [{ code = "ST" }]', "n1[0]"),
        (', n1 = [{ code = "ST", name = "A", id_qualifier = "92", id = "D" }]', "n1[0].id"),
        (', n1 = [{ code = "ST", name = "A", colour = "red" }]', "n1[0].colour"),
        (', dtm_qualifier = "4050"', "dtm_qualifier"),
        (', dtm = "yes"', "dtm"),
    ],
)
def test_bad_partner_options_are_refused_at_load_naming_their_key(
    tmp_path: Path, options: str, key: str
) -> None:
    error = refused(tmp_path, "edi846", EDI + options)
    assert error.key == f"channels[0].options.{key}", error


# -- options, checked when the config is loaded -------------------------------------------------

EDI = 'folder = "edi", sender_id = "INVSYNC", receiver_id = "ACMERETAIL"'


def test_the_registry_names_the_edi846_options() -> None:
    assert options_type("edi846") is Options


def test_good_options_load_with_their_documented_defaults(tmp_path: Path) -> None:
    options = msgspec.convert(load_channel(tmp_path, "edi846", EDI).options, Options)
    assert options.envelope() == Interchange(
        sender_qualifier="ZZ", sender_id="INVSYNC", receiver_qualifier="ZZ",
        receiver_id="ACMERETAIL", gs_sender="INVSYNC", gs_receiver="ACMERETAIL", test=False,
        report_type="MM", ack_requested=False, line_breaks=False,
    )
    spaced = load_channel(tmp_path, "edi846", EDI + ', gs_sender = " INV-GS "')
    assert msgspec.convert(spaced.options, Options).envelope().gs_sender == "INV-GS"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ('sender_id = "INVSYNC", receiver_id = "ACME"', "folder"),  # required and missing
        ('folder = " ", sender_id = "INVSYNC", receiver_id = "ACME"', "folder"),
        ('folder = "edi", sender_id = "", receiver_id = "ACME"', "sender_id"),
        ('folder = "edi", sender_id = "INVSYNC", receiver_id = "' + "X" * 16 + '"', "receiver_id"),
        ('folder = "edi", sender_id = "A*B", receiver_id = "ACME"', "sender_id"),
        ('folder = "edi", sender_id = 123456789, receiver_id = "ACME"', "sender_id"),  # type
        (EDI + ', sender_qualifier = "Z"', "sender_qualifier"),
        (EDI + ', gs_sender = "A"', "gs_sender"),
        (EDI + ', gs_receiver = "ACME~RETAIL"', "gs_receiver"),
        (EDI + ', test = "yes"', "test"),
        (EDI + ', report_type = "M"', "report_type"),
        (EDI + ', line_break = true', "line_break"),  # unknown key
    ],
)
def test_a_bad_option_is_refused_at_load_naming_its_key(
    tmp_path: Path, options: str, key: str
) -> None:
    assert refused(tmp_path, "edi846", options).key == f"channels[0].options.{key}"


def test_a_one_character_sender_needs_a_gs_sender_of_its_own(tmp_path: Path) -> None:
    error = refused(tmp_path, "edi846", 'folder = "edi", sender_id = "X", receiver_id = "ACME"')
    assert error.key == "channels[0].options" and "gs_sender" in error.message
    load_channel(tmp_path, "edi846", 'folder = "e", sender_id = "X", receiver_id = "ACME", '
                 'gs_sender = "XX"')


async def test_the_registry_builds_it_and_it_takes_no_webhooks(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        adapter = make_adapter(edi_channel(), AdapterContext(session=session, base_dir=tmp_path))
    assert isinstance(adapter, Edi846Adapter)
    assert adapter.folder == tmp_path / "outbox"
    with pytest.raises(BadWebhook):
        adapter.parse_webhook({}, b"{}")
    assert not hasattr(adapter, "read_back")
    assert create is edi846.create


# -- the writer and the reader agree -----------------------------------------------------------

_SKU_CHARS = "".join(
    c for c in string.printable if c not in "*~>^" and c not in "\t\n\r\x0b\x0c"
)
valid_skus = st.text(alphabet=_SKU_CHARS, min_size=1, max_size=48).filter(
    lambda s: s == s.strip()
)
batches = st.lists(
    st.tuples(valid_skus, st.integers(min_value=0, max_value=10**15 - 1)),
    min_size=1,
    max_size=40,
    unique_by=lambda item: item[0],
)
ENVELOPE = Interchange(
    sender_qualifier="ZZ", sender_id="INVSYNC", receiver_qualifier="ZZ", receiver_id="ACME",
    gs_sender="INVSYNC", gs_receiver="ACME", test=False, report_type="MM", ack_requested=False,
)


@settings(max_examples=150, deadline=None)
@given(items=batches, control=st.integers(min_value=1, max_value=edi846.MAX_CONTROL))
def test_any_batch_of_valid_skus_round_trips_through_writer_and_reader(
    items: list[tuple[str, int]], control: int
) -> None:
    assert all(sku_problem(sku) is None for sku, _ in items)
    text = render(ENVELOPE, control, datetime.fromtimestamp(NOW, UTC), items)
    parsed = parse_x12(text)
    assert parsed.items == items
    assert control_of(parsed) == control
    assert len(text.split("~", 1)[0]) + 1 == 106
