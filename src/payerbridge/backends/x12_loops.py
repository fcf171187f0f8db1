"""The loops of the X12 transactions pyx12 4.0.0 has no map for (pure).

pyx12 ships no 5010 map for the 278 review response (005010X217) nor for the 837
dental claim (005010X224A2). For those the reader still takes every segment from
pyx12's tokenizer (delimiters read from ISA, ISA/IEA, GS/GE and ST/SE control numbers
and counts, HL numbering and parents, 2400 LX numbering checked by ``X12Reader``), and
places each segment in its loop with the tables below, written from the TR3s' loop
structure: an HL segment opens the loop its level code (HL03) names, under the HL loop
its parent (HL02) opened; a segment that begins a loop (NM1 by its entity code, CLM,
LX, SBR, SVD...) opens it under the innermost open loop that can hold it, closing the
loops inside that one; any other segment belongs to the innermost open loop. Element
values are not checked against code lists here: that is what a map would add.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LOOPS", "LoopTable", "composites"]


@dataclass(frozen=True)
class LoopTable:
    """How one transaction's segments fall into loops without a map."""

    hl_levels: dict[str, str]  # HL03 -> loop id
    # (parent loop, segment id) -> child loop; NM1 children are keyed by NM101 below.
    starts: dict[tuple[str, str], str]
    # (parent loop, NM101) -> child loop; "*" matches any entity code.
    names: dict[tuple[str, str], str]
    composites: frozenset[str] = field(default_factory=frozenset)

    def child_loop(self, parent: str, segment_id: str, first_element: str) -> str | None:
        """The loop the segment opens when it comes inside ``parent``, if any."""
        if segment_id == "NM1":
            return self.names.get((parent, first_element)) or self.names.get((parent, "*"))
        return self.starts.get((parent, segment_id))


_HEADER_NAMES = {("", "41"): "1000A", ("", "40"): "1000B"}

_837D = LoopTable(
    hl_levels={"20": "2000A", "22": "2000B", "23": "2000C"},
    starts={
        ("2000A", "CLM"): "2300",
        ("2000B", "CLM"): "2300",
        ("2000C", "CLM"): "2300",
        ("2300", "SBR"): "2320",
        ("2300", "LX"): "2400",
        ("2400", "SVD"): "2430",
    },
    names={
        **_HEADER_NAMES,
        ("2000A", "85"): "2010AA",
        ("2000A", "87"): "2010AB",
        ("2000A", "PE"): "2010AC",
        ("2000B", "IL"): "2010BA",
        ("2000B", "PR"): "2010BB",
        ("2000C", "QC"): "2010CA",
        ("2300", "DN"): "2310A",
        ("2300", "P3"): "2310A",
        ("2300", "82"): "2310B",
        ("2300", "77"): "2310C",
        ("2300", "DD"): "2310D",
        ("2300", "DQ"): "2310E",
        ("2320", "IL"): "2330A",
        ("2320", "PR"): "2330B",
        ("2320", "*"): "2330C",
        ("2400", "82"): "2420A",
        ("2400", "DD"): "2420B",
        ("2400", "DQ"): "2420C",
        ("2400", "77"): "2420D",
    },
    composites=frozenset(
        ["CLM05", "CLM11", "SV301", "SV304", "SVD03", "TOO03", "HI01", "HI02", "HI03", "HI04"]
    ),
)

_278 = LoopTable(
    hl_levels={
        "20": "2000A",
        "21": "2000B",
        "22": "2000C",
        "23": "2000D",
        "EV": "2000E",
        "SS": "2000F",
    },
    starts={},
    names={
        **_HEADER_NAMES,
        ("2000A", "*"): "2010A",
        ("2000B", "*"): "2010B",
        ("2000C", "*"): "2010C",
        ("2000D", "*"): "2010D",
        ("2000E", "45"): "2010EB",
        ("2000E", "FS"): "2010EC",
        ("2000E", "ND"): "2010EC",
        ("2000E", "*"): "2010EA",
        ("2000F", "*"): "2010F",
    },
    composites=frozenset(
        # UM03 (service type) and HCR04 (second surgical opinion) are simple elements.
        ["UM04", "UM05", "SV101", "SV107", "SV202", "SV301", "SV304", "TOO03"]
        + [f"HI{n:02d}" for n in range(1, 13)]
    ),
)

# Keyed by what the reader calls the transaction (its kind).
LOOPS: dict[str, LoopTable] = {"837D": _837D, "278": _278}


def composites(kind: str) -> frozenset[str]:
    table = LOOPS.get(kind)
    return table.composites if table else frozenset()
