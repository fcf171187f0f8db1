"""CSV and fixed-width extracts: rows in, and every row that cannot be read named by
its line while the others go on."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from payerbridge.backends.model import RecordProblem, SourceRecord
from payerbridge.backends.readers import read_stream

CSV = {"columns": ["member_id", "code"], "key": ["row_id"]}


def read(kind: str, text: str, options: dict) -> list:  # type: ignore[type-arg]
    return list(read_stream(kind, io.BytesIO(text.encode()), "extract.txt", options))


def test_a_header_without_a_needed_column_refuses_the_file_naming_it() -> None:
    (problem,) = read("csv", "member_id,row_id\nM1,1\n", CSV)
    assert isinstance(problem, RecordProblem)
    assert problem.location.line == 1 and "code" in problem.text


def test_a_row_with_too_few_fields_is_named_and_the_rest_read() -> None:
    items = read("csv", "member_id,code,row_id\nM1,A,1\nM2,B\nM3,C,3\n", CSV)
    assert [type(i).__name__ for i in items] == ["SourceRecord", "RecordProblem", "SourceRecord"]
    assert items[1].location.line == 3
    assert items[2].key == "3" and items[2].data == {"member_id": "M3", "code": "C", "row_id": "3"}


def test_fixed_width_fields_by_position_and_short_lines_named() -> None:
    options = {
        "fields": [
            {"name": "member_id", "start": 1, "length": 5},
            {"name": "code", "start": 6, "length": 4},
        ],
        "key": ["member_id"],
        "skip_lines": 1,
    }
    items = read("fixed-width", "HEADER\nM0001HTN \nM02\n", options)
    assert isinstance(items[0], SourceRecord)
    assert items[0].data == {"member_id": "M0001", "code": "HTN"}
    assert isinstance(items[1], RecordProblem) and items[1].location.line == 3


def test_text_that_is_not_utf8_is_a_problem_not_a_crash() -> None:
    items = list(read_stream("csv", io.BytesIO(b"member_id,code\n\xff\xfe,1\n"), "x.csv", {}))
    assert isinstance(items[-1], RecordProblem)


@given(st.lists(st.text(alphabet='ab,"\n\r x', max_size=12), max_size=8))
def test_any_csv_gives_records_or_problems_never_an_exception(lines: list[str]) -> None:
    text = "member_id,code,row_id\n" + "\n".join(lines)
    for item in read("csv", text, CSV):
        assert isinstance(item, SourceRecord | RecordProblem)
