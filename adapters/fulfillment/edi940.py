"""``kind = "edi940"``: order parts as X12 940 (Warehouse Shipping Order) files for a 3PL.

Each batch of handoff messages is one interchange, written into ``folder`` (relative to the
config file's folder) complete or not at all: to a hidden temporary name, flushed, then renamed
to ``940_<location>_<ISA13>.edi``. Writing the file acknowledges the batch (the 3PL's translator
or an SFTP/AS2 relay takes it from there); a filesystem failure is ``Undelivered`` and retried.

One transaction set per message (X12 release 4010; ``*`` element, ``>`` component, ``~`` segment)::

    ISA*00*          *00*          *ZZ*BRAND          *ZZ*3PL            *
        261203*1200*U*00401*000000007*0*P*>~
    GS*OW*BRAND*3PL*20261203*1200*7*X*004010~
    ST*940*0001~
    W05*N*IS00000042*ORD-1001~                  (N original; F cancel)
    N1*ST*US-CA 94103~                          (ship-to, when the order has one)
    N4***CA*94103*US~
    N9*CO*shopify/ORD-1001~                     (the channel and order id in full)
    G62*10*20261203~                            (requested ship date: today)
    LX*1~
    W01*2*EA**SK*TEE-BLK-M~
    W76*2~
    SE*11*0001~
    GE*1*7~
    IEA*1*000000007~

- W05 (Shipping Order Identification): W0501 order status code, ``N`` original or ``F`` cancel;
  W0502 depositor order number, at most 22 characters: the part's reference (``IS`` and 8 digits),
  which the 945 repeats in W0602 and invsync maps back to the order; W0503 the purchase order
  number (the channel's order id, cut to 22 characters).
- A cancellation (``F``) lists the units withdrawn; a partial cancel keeps the rest of the part.
- W01 (Line Item Detail - Warehouse): W0101 quantity, W0102 unit ``EA``, W0104 ``SK`` (stock
  keeping unit) and W0105 the SKU. W76 (Total Shipping Order) W7601: the total quantity.
- ISA13 = IEA02, GS06 = GE02; ST02 = SE02 numbers the sets within the interchange. Control
  numbers survive restarts (``INCR fulfillment:{<location>}:isa_control``, as the 846 adapter).

References (``search`` tool): X12 4010 940 implementation guides on Stedi (L&M Distribution,
Taylored Services: ST/W05/N1/N9/G62/W66/LX/W01/W76 order), TrueCommerce "X12 W05 Shipping Order
Identification" (W0501 codes N Original, F Cancel; W0502/W0503 at most 22 characters), element
473 "Order Status Code" on stedi.com.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis

from ...core.fulfillment_config import Edi940Fulfillment
from ...core.fulfillment_messages import Message
from .base import Undelivered

__all__ = ["Edi940Writer", "control_key", "render_940"]

ELEMENT, COMPONENT, SEGMENT = "*", ">", "~"
_UNSAFE = re.compile(r"[*>~^\x00-\x1f\x7f-\uffff]")
MAX_CONTROL = 999_999_999


def control_key(location: str) -> str:
    """The store key of the location's last ISA control number."""
    return f"fulfillment:{{{location}}}:isa_control"


def _text(value: str, limit: int) -> str:
    """``value`` as an X12 data element: delimiters and controls replaced, cut to ``limit``."""
    return _UNSAFE.sub(" ", value).strip()[:limit]


def _transaction(message: Message, number: int, when: datetime) -> list[list[str]]:
    st = f"{number:04d}"
    body: list[list[str]] = [
        ["ST", "940", st],
        [
            "W05",
            "F" if message.type == "fulfillment.cancelled" else "N",
            message.ref,
            _text(message.order_id, 22),
        ],
    ]
    ship_to = message.ship_to or {}
    country, region, postal = (
        ship_to.get("country"), ship_to.get("region"), ship_to.get("postal_code")
    )
    if country or region or postal:
        label = " ".join(str(x) for x in (country, region, postal) if x)
        body.append(["N1", "ST", _text(label, 60)])
        body.append(
            ["N4", "", "", _text(str(region or ""), 2), _text(str(postal or ""), 15),
             _text(str(country or ""), 3)]
        )
    body.append(["N9", "CO", _text(f"{message.channel}/{message.order_id}", 30)])
    body.append(["G62", "10", when.strftime("%Y%m%d")])
    for i, line in enumerate(message.lines, 1):
        body.append(["LX", str(i)])
        body.append(["W01", str(line.qty), "EA", "", "SK", _text(line.sku, 48)])
    body.append(["W76", str(sum(line.qty for line in message.lines))])
    body.append(["SE", str(len(body) + 1), st])
    return body


def render_940(
    config: Edi940Fulfillment, control: int, when: datetime, messages: Sequence[Message]
) -> str:
    """The 940 interchange text for ``messages`` (one transaction set each)."""
    isa = ELEMENT.join(
        [
            "ISA", "00", " " * 10, "00", " " * 10,
            config.sender_qualifier, config.sender_id.ljust(15),
            config.receiver_qualifier, config.receiver_id.ljust(15),
            when.strftime("%y%m%d"), when.strftime("%H%M"), "U", "00401", f"{control:09d}",
            "0", config.usage, COMPONENT,
        ]
    )
    date, clock = when.strftime("%Y%m%d"), when.strftime("%H%M")
    segments = [
        isa,
        ELEMENT.join(
            ["GS", "OW", config.sender_id.strip(), config.receiver_id.strip(), date, clock,
             str(control), "X", "004010"]
        ),
    ]
    for number, message in enumerate(messages, 1):
        segments.extend(ELEMENT.join(parts) for parts in _transaction(message, number, when))
    segments.append(ELEMENT.join(["GE", str(len(messages)), str(control)]))
    segments.append(ELEMENT.join(["IEA", "1", f"{control:09d}"]))
    return "".join(segment + SEGMENT + "\n" for segment in segments)


class Edi940Writer:
    """Writes batches of handoff messages as 940 interchanges into the location's folder."""

    def __init__(
        self,
        location: str,
        config: Edi940Fulfillment,
        redis: Redis,
        *,
        base_dir: Path = Path("."),
        wall: Callable[[], float],
    ) -> None:
        self.location = location
        self.config = config
        self.batch_size = config.batch_size
        self._redis = redis
        self._wall = wall
        folder = Path(config.folder).expanduser()
        self.folder = folder if folder.is_absolute() else base_dir / folder
        self._stem = "940_" + re.sub(r"[^A-Za-z0-9_.-]", "_", location)
        #: the last files written (observability, tests)
        self.written: list[Path] = []

    async def _control(self) -> int:
        number = int(await self._redis.incr(control_key(self.location)))
        return (number - 1) % MAX_CONTROL + 1

    async def send(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        try:
            control = await self._control()
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise Undelivered(f"control number: {exc}") from exc
        when = datetime.fromtimestamp(self._wall(), UTC)
        text = render_940(self.config, control, when, messages)
        target = self.folder / f"{self._stem}_{control:09d}.edi"
        try:
            await asyncio.to_thread(_write_atomically, target, text)
        except OSError as exc:
            raise Undelivered(f"cannot write {target}: {exc.strerror or exc}") from exc
        self.written.append(target)
        del self.written[:-100]

    async def aclose(self) -> None:
        """Nothing to release."""


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    with open(temporary, "w", encoding="ascii", errors="replace", newline="") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
