"""X12 945 (Warehouse Shipping Advice) files: what a 3PL shipped, back as ``order.fulfilled``.

A 945 answers our 940: W06 (Warehouse Shipment Identification) W0601 reporting code, W0602 the
depositor order number (the part's reference our 940 sent in W0502), W0603 the ship date, W0604
the shipment id; then per line W12 (Warehouse Item Detail): W1201 status (``CC`` complete, ``CP``
partial, ...), W1202 quantity ordered, W1203 quantity shipped, W1204 the difference, W1205 unit,
W1206 UPC, W1207 product id qualifier, W1208 product id (the SKU with ``SK`` or ``VN``).
The delimiters are read from the ISA (element at offset 3, component at 104, segment at 105), so
files with newlines after each segment, or other delimiters, read the same.

References (``search`` tool): X12 4010 945 guides on Stedi (3PL Central, L&M Distribution, UPS:
W06/N9/G62/W27/LX/W12/W03 order), ASC X12 element 368 "Shipment/Order Status Code" (CC, CP).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BadAdvice", "Shipment", "parse_945"]


class BadAdvice(ValueError):
    """The file is not a 945 invsync can read; the message says where and why."""


@dataclass(frozen=True)
class Shipment:
    """One 945 transaction set: which part shipped what."""

    control: str
    ref: str
    shipment_id: str
    lines: dict[str, int] = field(default_factory=dict)


def _segments(text: str) -> tuple[list[list[str]], str]:
    start = text.find("ISA")
    if start < 0 or len(text) < start + 106:
        raise BadAdvice("no ISA segment (an X12 interchange starts with ISA)")
    isa = text[start:start + 106]
    element, terminator = isa[3], isa[105]
    if element.isalnum() or terminator.isalnum():
        raise BadAdvice("the ISA segment has no delimiters where X12 puts them")
    raw = text[start:].split(terminator)
    segments = [s.strip("\r\n ").split(element) for s in raw]
    segments = [s for s in segments if s and s[0]]
    control = segments[0][13].strip() if len(segments[0]) > 13 else ""
    return segments, control


def parse_945(text: str) -> list[Shipment]:
    """The shipments of every 945 set of an interchange; BadAdvice when it is not readable."""
    segments, control = _segments(text)
    shipments: list[Shipment] = []
    current: dict[str, object] | None = None
    found_945 = False
    for parts in segments:
        tag = parts[0]
        if tag == "ST":
            if len(parts) < 2 or parts[1] != "945":
                raise BadAdvice(f"transaction set {parts[1] if len(parts) > 1 else '?'} is not "
                                "a 945")
            found_945 = True
            current = {"ref": "", "shipment": "", "lines": {}}
        elif tag == "W06" and current is not None:
            if len(parts) < 3 or not parts[2]:
                raise BadAdvice("W06 without a depositor order number (W0602)")
            current["ref"] = parts[2]
            current["shipment"] = parts[4] if len(parts) > 4 else ""
        elif tag == "W12" and current is not None:
            if len(parts) < 9 or not parts[8]:
                raise BadAdvice("W12 without a product id (W1208)")
            try:
                shipped = int(parts[3] or "0")
            except ValueError as exc:
                raise BadAdvice(f"W12 quantity shipped {parts[3]!r} is not a number") from exc
            if shipped < 0:
                raise BadAdvice(f"W12 quantity shipped {shipped} is negative")
            lines = current["lines"]
            assert isinstance(lines, dict)
            if shipped:
                lines[parts[8]] = lines.get(parts[8], 0) + shipped
        elif tag == "SE" and current is not None:
            if not current["ref"]:
                raise BadAdvice("a 945 set without W06")
            shipments.append(
                Shipment(
                    control=control,
                    ref=str(current["ref"]),
                    shipment_id=str(current["shipment"]),
                    lines=dict(current["lines"]),  # type: ignore[call-overload]
                )
            )
            current = None
    if not found_945:
        raise BadAdvice("no 945 transaction set in the interchange")
    return shipments
