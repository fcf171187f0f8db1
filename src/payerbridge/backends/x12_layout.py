"""X12 as it is written, read into the one layout pyx12's tokenizer expects (pure: from a
text stream, streamed).

The separators are taken from the ISA as the standard places them. The ISA is fixed
width (106 characters): the element separator is its 4th character, the component
separator ISA16 (its 105th), the repetition separator ISA11 (in 5010) and the segment
terminator the character after ISA16. Around that, what files carry is tolerated and
said (``Layout``):

- a byte-order mark (UTF-8's, as an editor writes it) before the ISA;
- spaces, tabs and line breaks before the ISA, around segments (``~\\r\\n``, ``~\\n``,
  leading spaces), and line breaks inside segments (a file wrapped at 80 columns):
  when the segment terminator is not itself a line break, no line break is data;
- a line break as the segment terminator (each segment on its own line);
- an empty segment (two terminators in a row), dropped; a last segment without its
  terminator, kept.

What cannot be tolerated, because the separators would be guesses, is said in one
sentence (``LayoutError``): no ISA, an ISA that is not fixed width (naming the element
whose width is wrong), separators that are letters, digits or each other.

The text given to pyx12 (``NormalizedText``) is the ISA, then each segment followed by
the terminator and a line break; segment positions count those segments from 1.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

__all__ = ["ISA_LENGTH", "Layout", "LayoutError", "NormalizedText", "Separators", "read_isa"]

ISA_LENGTH = 106
# The character offsets of the element separators that close ISA01..ISA15 (0-based),
# from the ISA's fixed element widths: 2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1.
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
_BOM = "\xef\xbb\xbf"  # UTF-8's byte-order mark, read as latin-1
_UTF16_BOMS = ("\xff\xfe", "\xfe\xff")
_BREAKS = "\r\n"
_BLANK = " \t\r\n\x0b\x0c"
_CHUNK = 1 << 11  # as pyx12 reads: memory stays flat whatever the file's size


class LayoutError(ValueError):
    """The file is not an X12 interchange whose separators can be read: ``reason``
    completes "not an X12 interchange: ..."."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Separators:
    element: str
    component: str
    repetition: str | None  # ISA11 in 5010; None in 4010 (ISA11 is a standards id there)
    segment: str

    @property
    def is_line_terminated(self) -> bool:
        return self.segment in _BREAKS


@dataclass
class Layout:
    """What the file's layout carried that X12 does not define (all tolerated)."""

    byte_order_mark: bool = False
    padded_segments: int = 0  # segments with spaces, tabs or line breaks around them
    wrapped_segments: int = 0  # segments with line breaks inside them
    empty_segments: int = 0  # two terminators in a row (dropped)
    unterminated_end: bool = False  # the last segment had no terminator
    leading_text: bool = False  # blank text before the ISA

    def notes(self) -> list[str]:
        """What an operator is told about the layout, one sentence each (no values)."""
        found = []
        if self.byte_order_mark:
            found.append("the file begins with a byte-order mark (ignored)")
        if self.leading_text:
            found.append("blank text before the ISA (ignored)")
        if self.padded_segments:
            found.append(
                f"{self.padded_segments} segment(s) with spaces, tabs or extra line breaks "
                "around them (ignored)"
            )
        if self.wrapped_segments:
            found.append(
                f"{self.wrapped_segments} segment(s) broken across lines (line breaks ignored)"
            )
        if self.empty_segments:
            found.append(f"{self.empty_segments} empty segment(s) (dropped)")
        if self.unterminated_end:
            found.append("the last segment has no segment terminator (read as ended)")
        return found


def read_isa(head: str) -> tuple[str, Separators, int]:
    """The ISA at the start of ``head`` (text after a byte-order mark and blanks): its
    106 characters without line breaks, its separators, and how many characters of
    ``head`` it took (with its terminator and the line breaks inside it)."""
    if not head.startswith("ISA"):
        if head[:2] in _UTF16_BOMS or "\x00" in head[:8]:
            raise LayoutError("the file is UTF-16 text; X12 is written in single bytes")
        what = "is empty" if not head.strip() else "does not begin with an ISA segment"
        raise LayoutError(f"the file {what}")
    chars: list[str] = []
    used = 0
    while len(chars) < ISA_LENGTH - 1 and used < len(head):
        char = head[used]
        used += 1
        if char not in _BREAKS:
            chars.append(char)
    element = chars[3] if len(chars) > 3 else ""
    offset = 3
    for number, width in enumerate(_ISA_WIDTHS, 1):
        if offset < len(chars) and chars[offset] != element:
            # The separator before ISA<number> is not where it belongs: the element
            # before it has the wrong width.
            raise LayoutError(_width_reason("".join(chars), element, number - 1))
        offset += width + 1
    if len(chars) < ISA_LENGTH - 1:
        raise LayoutError(f"the file ends inside its ISA ({len(chars)} of 106 characters)")
    terminator, used = _terminator(head, used)
    isa = "".join(chars) + terminator
    separators = Separators(
        element=element,
        component=isa[104],
        repetition=isa[82] if isa[84:89] == "00501" else None,
        segment=terminator,
    )
    _check_separators(separators)
    return isa, separators, used


def _terminator(head: str, used: int) -> tuple[str, int]:
    """The segment terminator after ISA16: the next character, or a line break when the
    next non-break character begins the next segment (a letter)."""
    if used >= len(head):
        raise LayoutError("the file ends after ISA16, before the segment terminator")
    char = head[used]
    if char not in _BREAKS:
        return char, used + 1
    after = used
    while after < len(head) and head[after] in _BREAKS:
        after += 1
    if after < len(head) and not head[after].isalnum() and head[after] not in " \t":
        return head[after], after + 1  # the terminator was wrapped onto the next line
    return "\n", used


def _width_reason(isa: str, element: str, number: int) -> str:
    """Why an ISA is not fixed width: ISA<number> (1-16) is not as wide as it must be."""
    found = isa.split(element)
    if number < 1 or len(found) <= number:
        return "its ISA does not have 16 elements within 106 characters"
    return (
        f"its ISA is not fixed width: ISA{number:02d} is {len(found[number])} characters "
        f"where the standard fixes {_ISA_WIDTHS[number - 1]}, so its separators cannot be read"
    )


def _check_separators(separators: Separators) -> None:
    chosen = [separators.element, separators.component, separators.segment]
    if separators.repetition is not None:
        chosen.append(separators.repetition)
    if any(c.isalnum() or c == " " for c in chosen if c not in _BREAKS):
        raise LayoutError("a separator in its ISA is a letter, a digit or a space")
    if len(set(chosen)) != len(chosen):
        raise LayoutError("its ISA names the same character for two separators")


class NormalizedText(io.TextIOBase):
    """The file's segments in pyx12's layout, read as a text stream; ``layout`` says what
    was tolerated once it has been read to the end. Raises ``LayoutError`` at
    construction when the file has no readable ISA."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.layout = Layout()
        self._raw = raw
        head = raw.read(_CHUNK)
        if head.startswith(_BOM):
            self.layout.byte_order_mark = True
            head = head[len(_BOM) :]
        stripped = head.lstrip(_BLANK)
        self.layout.leading_text = len(stripped) != len(head)
        isa, self.separators, used = read_isa(stripped)
        self.version = isa[84:89]  # ISA12
        self._first = stripped[used:]
        self._segments = self._body()
        # pyx12 stops at an empty line: no second line break after a line terminator.
        self._buffer = isa if self.separators.is_line_terminated else isa + "\n"

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        want = None if size is None or size < 0 else size
        while want is None or len(self._buffer) < want:
            chunk = next(self._segments, None)
            if chunk is None:
                break
            self._buffer += chunk
        if want is None:
            out, self._buffer = self._buffer, ""
        else:
            out, self._buffer = self._buffer[:want], self._buffer[want:]
        return out

    def _body(self) -> Iterator[str]:
        terminator = self.separators.segment
        line_terminated = self.separators.is_line_terminated
        pending = ""
        chunk = self._first
        while chunk:
            if line_terminated:
                chunk = chunk.replace("\r\n", "\n").replace("\r", "\n")
            pending += chunk
            *complete, pending = pending.split(terminator)
            out = [self._segment(part, line_terminated) for part in complete]
            yield "".join(out)
            chunk = self._raw.read(_CHUNK)
        if pending.strip(_BLANK):
            self.layout.unterminated_end = True
            yield self._segment(pending, line_terminated)

    def _segment(self, part: str, line_terminated: bool) -> str:
        """One segment as pyx12 reads it: no blanks around it, no breaks inside it."""
        text = part.strip(_BLANK)
        if not text:
            if not line_terminated:
                self.layout.empty_segments += 1
            return ""
        # A line break after each terminator is how writers lay files out; more is noted.
        if part.lstrip(_BREAKS) != text:
            self.layout.padded_segments += 1
        if not line_terminated:
            inner = text.replace("\r", "").replace("\n", "")
            if inner != text:
                self.layout.wrapped_segments += 1
                text = inner
        ending = "\n" if line_terminated else self.separators.segment + "\n"
        return text + ending
