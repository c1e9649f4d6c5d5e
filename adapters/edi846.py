"""EDI X12 846 (Inventory Inquiry/Advice) files for retail and wholesale trading partners.

No HTTP: ``push`` writes one interchange per batch into ``options.folder`` (relative to the
config file's folder), where the partner's EDI translator or an SFTP/AS2 relay picks it up. A file
appears complete or not at all: it is written to a hidden temporary name in the same folder,
flushed to disk, then renamed to ``846_<channel>_<ISA13>.edi``.

The interchange (X12 release 4010, delimiters ``*`` element, ``>`` component, ``~`` segment;
shown one segment per line, the ISA cut after ISA08)::

    ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *
        260101*1200*U*00401*000000042*0*P*>~
    GS*IB*SENDER*RECEIVER*20260101*1200*42*X*004010~
    ST*846*0042~
    BIA*00*MM*000000042*20260101*1200~
    LIN**SK*TEE-BLK-M~
    QTY*33*7*EA~
    ...
    CTT*2~
    SE*8*0042~
    GE*1*42~
    IEA*1*000000042~

- ISA is the one fixed-width segment: 16 elements, 106 characters with its terminator; ISA06
  and ISA08 are padded to 15, ISA13 is 9 digits (the Sun B2B/Oracle ISA parsing notes give the
  delimiter offsets 3, 6, 17, ... 103 and the component separator at 104, terminator at 105).
- GS01 ``IB`` is the functional identifier of the 846 (Walmart's "846 Inventory Inquiry/Advice":
  "Functional Group IB"; the X12 transaction set table: "846 ... Function Group IB").
- BIA01 ``00`` original, BIA02 report type (``MM`` unless ``options.report_type``), BIA03 the
  reference (the control number), BIA04/05 the date and time.
- Optional heading segments a partner's implementation guide may require, each from the options
  and in the standard's heading order after BIA: ``DTM*{qualifier}*{CCYYMMDD}*{HHMM}``
  (position 050, ``options.dtm``: the advice's date and time), ``REF*{qualifier}*{value}``
  (position 060, up to 12: ``options.ref``, e.g. IA internal vendor number) and the N1 loop
  ``N1*{code}*{name}*{id qualifier}*{id}`` (position 080, up to 5: ``options.n1``, e.g. SF ship
  from, ST ship to, with N103/N104 together or not at all and N102 or N103 present, the N1
  syntax notes P0304 and R0203). Heading positions: the 846 table of X12 release 4040
  (ws2.segment.co.il/Public/EDI-Segment/x12-4040/846/846.htm: 020 BIA, 050 DTM, 060 REF, 080
  N1 loop of 5) and Stedi's 4010 846 guides (e.g. Turn5: REF at 060, N1 loop before the LIN
  loop); element sizes REF02 AN 1..30, N102 AN 1..60, N104 AN 2..80, DTM01 ID 3 (Stedi X12
  004010 segment reference). SE01 counts them with the rest.
- Per item ``LIN**SK*{sku}`` (SK = stock keeping unit) and ``QTY*33*{qty}*EA``: qualifier 33 is
  "quantity available for sale" (Logicbroker/DS360 846 specs, ``../shared/CHANNELS.md``).
- ``CTT*{number of LIN}``, ``SE01`` counts ST through SE, and the control numbers pair up:
  ISA13 = IEA02, GS06 = GE02, ST02 = SE02.

Control numbers (ISA13, GS06 and ST02 carry the same number) increase by one per interchange and
survive restarts: ``INCR adapter:{<channel>}:isa_control`` in Redis when the daemon has one,
else a small control file in the folder updated under an exclusive ``flock``. A number is taken
before the file is written, so a failed write leaves a gap, never a repeat (X12 partners accept
gaps, not duplicates). ISA13 has 9 digits: after 999999999 the sequence starts again at 1.

Errors: a SKU that cannot be written in X12 (a delimiter, a control or non-ASCII character, more
than 48 characters, the LIN03 maximum) or a negative quantity is ``permanent`` for that SKU and
the rest of the batch is written. Filesystem failures (permission denied, disk full, I/O error, a
folder that is not there yet and cannot be made, e.g. an unmounted share) are ``Retryable``: the
channel actor backs off and the breaker opens until an operator fixes the folder. Only a folder
path that names an existing non-directory is ``Permanent``: no wait fixes that configuration.
There is no read-back and no inbound webhook.

References (``search`` tool): Stedi 846 4010 implementation guides (Flxpoint, Logic Broker:
ISA element widths, delimiters ``~ * >``), Oracle "Sun B2B Suite ASC X12 OTD Library User's Guide",
"Steps Taken to Check for ISA Segment Errors" (ISA fixed offsets), developer.walmart.com
"846 Inventory Inquiry/Advice" (functional group IB, BIA/LIN/QTY), Logicbroker
"Inventory Advice 846 Specs" (ST/BIA/LIN/QTY/CTT/SE), rubydoc Eddy TS846 (functional group IB).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
from redis.exceptions import RedisError

from ..core.config import Channel
from .base import AdapterContext, BaseAdapter, Permanent, PushResult, Retryable, Update
from .options import parse_options

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "COMPONENT",
    "ELEMENT",
    "MAX_CONTROL",
    "SEGMENT",
    "Edi846Adapter",
    "Interchange",
    "Options",
    "Party",
    "Ref",
    "control_key",
    "create",
    "render",
    "sku_problem",
]

ELEMENT = "*"
COMPONENT = ">"
SEGMENT = "~"
#: ISA13 is nine digits.
MAX_CONTROL = 999_999_999
#: LIN03 (data element 234, Product/Service ID) is AN 1..48.
MAX_SKU_LENGTH = 48
#: QTY02 (data element 380) is R 1..15: digits only for whole units.
MAX_QTY_DIGITS = 15

_X12_TEXT = re.compile(r"^[\x20-\x7e]*$")
# Printable ASCII without the three delimiters (and the repetition separator of 4020+, '^').
_DELIMITERS = frozenset(ELEMENT + COMPONENT + SEGMENT + "^")
_ID_CHAR = r"[\x20-\x29\x2b-\x3d\x3f-\x5d\x5f-\x7d]"  # _X12_TEXT without the delimiters
_ID_EDGE = r"[\x21-\x29\x2b-\x3d\x3f-\x5d\x5f-\x7d]"  # the same without the space

#: ISA06 / ISA08: 1..15 characters (padded to 15), not only spaces.
PartnerId = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^(?=.*\S){_ID_CHAR}{{1,15}}$",
        description="1 to 15 printable ASCII characters without the X12 delimiters * > ~ ^",
    ),
]
#: GS02 / GS03: 2..15 characters once surrounding spaces are trimmed.
GroupId = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^\s*{_ID_EDGE}{_ID_CHAR}{{0,13}}{_ID_EDGE}\s*$",
        description="2 to 15 printable ASCII characters without the X12 delimiters * > ~ ^",
    ),
]
#: ISA05 / ISA07.
Qualifier = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z0-9]{2}$",
        description="a 2-character interchange ID qualifier such as ZZ, 01, 08, 12",
    ),
]
#: BIA02.
ReportType = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z0-9]{2}$", description="a 2-character BIA02 code")
]
#: REF01 (128), N101 (98): ID 2..3.
Code = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z0-9]{2,3}$", description="a 2- or 3-character X12 code")
]
#: N103 (66): ID 1..2.
IdQualifier = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z0-9]{1,2}$", description="a 1- or 2-character X12 code")
]
#: DTM01 (374): ID 3.
DateQualifier = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z0-9]{3}$", description="a 3-character X12 date qualifier")
]


def _text(low: int, high: int) -> object:
    """X12 AN text of ``low..high`` characters without the delimiters or edge spaces."""
    pattern = (
        rf"^{_ID_EDGE}$" if high == 1 else rf"^{_ID_EDGE}(?:{_ID_CHAR}{{0,{high - 2}}}{_ID_EDGE})?$"
    )
    if low > 1:
        pattern = rf"^(?=.{{{low},}}$){pattern[1:]}"
    return msgspec.Meta(
        pattern=pattern,
        description=f"{low} to {high} printable ASCII characters without the X12 delimiters "
        "* > ~ ^ or leading/trailing spaces",
    )


#: REF02 (127): AN 1..30.
RefValue = Annotated[str, _text(1, 30)]
#: N102 (93): AN 1..60.
PartyName = Annotated[str, _text(1, 60)]
#: N104 (67): AN 2..80.
PartyId = Annotated[str, _text(2, 80)]


class Ref(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One ``REF`` segment of the heading: ``REF*{qualifier}*{value}``."""

    qualifier: Code
    value: RefValue


class Party(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One N1 loop of the heading: ``N1*{code}*{name}*{id_qualifier}*{id}``."""

    code: Code
    name: PartyName | None = None
    id_qualifier: IdQualifier | None = None
    id: PartyId | None = None

    def __post_init__(self) -> None:
        if (self.id_qualifier is None) != (self.id is None):
            raise ValueError("id_qualifier and id go together (X12 N1 note P0304)")
        if self.name is None and self.id is None:
            raise ValueError("name, or id_qualifier and id, is required (X12 N1 note R0203)")

    def elements(self) -> list[str]:
        """N1 without its id, trailing empty elements left out."""
        parts = [self.code, self.name or ""]
        if self.id_qualifier is not None and self.id is not None:
            parts += [self.id_qualifier, self.id]
        return parts
Folder = Annotated[str, msgspec.Meta(pattern=r"\S", description="a folder path")]


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``edi846`` (docs/channels/edi846.md)."""

    #: Where files are written; relative to the config file's folder; made if missing.
    folder: Folder
    sender_id: PartnerId
    receiver_id: PartnerId
    sender_qualifier: Qualifier = "ZZ"
    receiver_qualifier: Qualifier = "ZZ"
    #: GS02 / GS03; None: ``sender_id`` / ``receiver_id``.
    gs_sender: GroupId | None = None
    gs_receiver: GroupId | None = None
    #: ISA15 ``T`` (test) instead of ``P`` (production).
    test: bool = False
    #: ISA14 ``1``: ask the partner for a TA1.
    ack_requested: bool = False
    report_type: ReportType = "MM"
    #: A newline after each segment terminator, for partners that ask for it.
    line_breaks: bool = False
    #: ``REF`` segments after BIA (up to 12), e.g. ``[{qualifier = "IA", value = "12345"}]``.
    ref: Annotated[list[Ref], msgspec.Meta(max_length=12)] = []
    #: N1 loops after the REFs (up to 5), e.g. ``[{code = "SF", name = "Acme DC",
    #: id_qualifier = "92", id = "DC01"}]``.
    n1: Annotated[list[Party], msgspec.Meta(max_length=5)] = []
    #: A ``DTM`` after BIA with the advice's date and time, qualified by ``dtm_qualifier``.
    dtm: bool = False
    dtm_qualifier: DateQualifier = "097"

    def __post_init__(self) -> None:
        # Only a defaulted GS id can break its rule: a given one has its pattern checked.
        for name, default in (("gs_sender", "sender_id"), ("gs_receiver", "receiver_id")):
            if getattr(self, name) is None and not 2 <= len(getattr(self, default).strip()) <= 15:
                raise ValueError(
                    f"{name} is {default} when left out, and must be 2..15 characters: set "
                    f"{name} (got {default} = {getattr(self, default)!r})"
                )

    def envelope(self) -> Interchange:
        """The envelope values these options give every interchange."""
        return Interchange(
            sender_qualifier=self.sender_qualifier,
            sender_id=self.sender_id,
            receiver_qualifier=self.receiver_qualifier,
            receiver_id=self.receiver_id,
            gs_sender=(self.gs_sender or self.sender_id).strip(),
            gs_receiver=(self.gs_receiver or self.receiver_id).strip(),
            test=self.test,
            report_type=self.report_type,
            ack_requested=self.ack_requested,
            line_breaks=self.line_breaks,
            dtm_qualifier=self.dtm_qualifier if self.dtm else None,
            refs=tuple((r.qualifier, r.value) for r in self.ref),
            parties=tuple(tuple(p.elements()) for p in self.n1),
        )


def create(channel: Channel, ctx: AdapterContext) -> Edi846Adapter:
    """The adapter for an ``edi846`` channel (no credentials: files in ``options.folder``)."""
    return Edi846Adapter(
        channel,
        options=parse_options(channel, Options),
        redis=ctx.redis,
        base_dir=ctx.base_dir,
        wall=ctx.wall,
    )


def control_key(channel_id: str) -> str:
    """The Redis key of the channel's last ISA control number (one hash tag per channel)."""
    return f"adapter:{{{channel_id}}}:isa_control"


def sku_problem(sku: str) -> str | None:
    """Why ``sku`` cannot be an X12 LIN03, or None when it can."""
    if not sku:
        return "an empty SKU cannot be written"
    if len(sku) > MAX_SKU_LENGTH:
        return f"longer than {MAX_SKU_LENGTH} characters (X12 LIN03 maximum)"
    bad = sorted({c for c in sku if c in _DELIMITERS})
    if bad:
        return f"contains the X12 delimiter(s) {''.join(bad)!r}"
    if not _X12_TEXT.match(sku):
        return "contains a control or non-ASCII character X12 cannot carry"
    if sku != sku.strip():
        return "has leading or trailing spaces (X12 trims them)"
    return None


@dataclass(frozen=True, kw_only=True)
class Interchange:
    """The envelope values of one 846 interchange."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    gs_sender: str
    gs_receiver: str
    test: bool
    report_type: str
    ack_requested: bool
    line_breaks: bool = False
    #: DTM01 of a heading DTM (None: no DTM).
    dtm_qualifier: str | None = None
    #: (REF01, REF02) of each heading REF.
    refs: tuple[tuple[str, str], ...] = ()
    #: The elements of each heading N1 after its id.
    parties: tuple[tuple[str, ...], ...] = ()


def render(
    envelope: Interchange, control: int, when: datetime, items: Sequence[tuple[str, int]]
) -> str:
    """The 846 interchange text for ``items`` (SKU, quantity).

    The caller has checked every SKU with :func:`sku_problem` and every quantity is >= 0.
    """
    isa = ELEMENT.join(
        [
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            envelope.sender_qualifier,
            envelope.sender_id.ljust(15),
            envelope.receiver_qualifier,
            envelope.receiver_id.ljust(15),
            when.strftime("%y%m%d"),
            when.strftime("%H%M"),
            "U",
            "00401",
            f"{control:09d}",
            "1" if envelope.ack_requested else "0",
            "T" if envelope.test else "P",
            COMPONENT,
        ]
    )
    date, clock = when.strftime("%Y%m%d"), when.strftime("%H%M")
    st_control = f"{control:04d}"
    body: list[list[str]] = [
        ["ST", "846", st_control],
        ["BIA", "00", envelope.report_type, f"{control:09d}", date, clock],
    ]
    if envelope.dtm_qualifier is not None:
        body.append(["DTM", envelope.dtm_qualifier, date, clock])
    body.extend(["REF", qualifier, value] for qualifier, value in envelope.refs)
    body.extend(["N1", *party] for party in envelope.parties)
    for sku, qty in items:
        body.append(["LIN", "", "SK", sku])
        body.append(["QTY", "33", str(qty), "EA"])
    body.append(["CTT", str(len(items))])
    body.append(["SE", str(len(body) + 1), st_control])
    segments = [
        isa,
        ELEMENT.join(
            [
                "GS",
                "IB",
                envelope.gs_sender,
                envelope.gs_receiver,
                date,
                clock,
                str(control),
                "X",
                "004010",
            ]
        ),
        *(ELEMENT.join(parts) for parts in body),
        ELEMENT.join(["GE", "1", str(control)]),
        ELEMENT.join(["IEA", "1", f"{control:09d}"]),
    ]
    # Pure X12 runs the segments together; some partners ask for a newline after each terminator.
    end = SEGMENT + ("\n" if envelope.line_breaks else "")
    return "".join(segment + end for segment in segments)


class Edi846Adapter(BaseAdapter):
    """Writes each pushed batch as one X12 846 interchange file into the channel's folder.

    ``options`` are the channel's, parsed (left out: parsed here); a relative ``folder`` is
    relative to ``base_dir``, the config file's folder.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        options: Options | None = None,
        redis: Redis | None = None,
        base_dir: Path = Path("."),
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.options = options = options or parse_options(channel, Options)
        self._redis = redis
        self._wall = wall
        path = Path(options.folder).expanduser()
        self.folder = path if path.is_absolute() else base_dir / path
        self.envelope = options.envelope()
        self._lock = asyncio.Lock()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", channel.id)
        self._stem = f"846_{safe}"
        self._control_file = self.folder / f".{self._stem}.control"
        #: the last files this adapter wrote (observability, tests)
        self.written: deque[Path] = deque(maxlen=100)

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Write one interchange with every writable update; per-SKU results."""
        failures: dict[str, PushResult] = {}
        items: dict[str, int] = {}  # the last update of a SKU wins (an actor sends one each)
        for update in updates:
            problem = sku_problem(update.sku)
            if problem is None and update.available < 0:
                problem = f"negative quantity {update.available} cannot be advised"
            if problem is None and len(str(update.available)) > MAX_QTY_DIGITS:
                problem = f"quantity {update.available} exceeds the X12 QTY02 width"
            if problem is not None:
                failures[update.sku] = PushResult(
                    sku=update.sku, outcome="permanent", error=f"EDI 846: SKU {problem}"
                )
            else:
                items[update.sku] = update.available
        if items:
            async with self._lock:  # one interchange at a time: numbers and files in order
                await self._ensure_folder()
                control = await self._next_control()
                when = datetime.fromtimestamp(self._wall(), UTC)
                text = render(self.envelope, control, when, list(items.items()))
                target = self.folder / f"{self._stem}_{control:09d}.edi"
                await asyncio.to_thread(_write_atomically, target, text.encode("ascii"))
                self.written.append(target)
        return [failures.get(u.sku) or PushResult(sku=u.sku, outcome="ok") for u in updates]

    async def _ensure_folder(self) -> None:
        try:
            await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise Permanent(
                f"options.folder {str(self.folder)!r} is not a directory: {exc}"
            ) from exc
        except OSError as exc:
            raise Retryable(f"cannot create the EDI folder {str(self.folder)!r}: {exc}") from exc

    async def _next_control(self) -> int:
        """The next interchange control number, durably taken."""
        if self._redis is not None:
            try:
                raw = await self._redis.incr(control_key(self.channel.id))
            except RedisError as exc:
                raise Retryable(f"cannot take an ISA control number from Redis: {exc}") from exc
            return (int(raw) - 1) % MAX_CONTROL + 1
        try:
            return await asyncio.to_thread(
                _increment_file, self._control_file, self.folder, self._stem
            )
        except OSError as exc:
            raise Retryable(
                f"cannot take an ISA control number from {str(self._control_file)!r}: {exc}"
            ) from exc


# -- filesystem (runs in a worker thread) ------------------------------------------------------


def _write_atomically(target: Path, data: bytes) -> None:
    """``data`` at ``target`` or nothing: a hidden temp file in the same folder, fsync, rename."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise Retryable(f"cannot write {str(target)!r}: {_reason(exc)}") from exc
    _fsync_dir(target.parent)


def _increment_file(path: Path, folder: Path, stem: str) -> int:
    """Take the next number from the control file under an exclusive lock (file mode)."""
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            current = _read_control(path)
            if current is None:
                # No control file (first run, or deleted): never reuse a number already on disk.
                current = _highest_written(folder, stem)
            value = current % MAX_CONTROL + 1
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(f"{value}\n", encoding="ascii")
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            _fsync_dir(folder)
            return value
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _read_control(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        raise OSError(errno.EINVAL, f"control file holds {text[:20]!r}, not a number")
    return int(text)


def _highest_written(folder: Path, stem: str) -> int:
    pattern = re.compile(rf"^{re.escape(stem)}_(\d{{9}})\.edi$")
    highest = 0
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest


def _fsync_dir(folder: Path) -> None:
    # The rename is durable once the directory entry is; not every filesystem allows this.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "disk full"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return str(exc)
