"""A mapping's own examples, run: each example file read with the mapping's reader and
mapped, compared with what the analyst recorded as right (``<case>.expected.json``).
What ``payerbridge mappings test`` runs (pure but for reading the example files)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import orjson

from payerbridge.backends.mapping import Example, Mapping, RecordNotMapped
from payerbridge.backends.model import RecordProblem
from payerbridge.backends.readers import read_file

__all__ = ["EXAMPLE_SOURCE", "ExampleRun", "record_example", "run_example"]

# The source and namespace examples are mapped as: ids in expected outputs depend on them.
EXAMPLE_SOURCE = "example"
EXAMPLE_NAMESPACE = "plan"


@dataclass(frozen=True)
class ExampleRun:
    example: Example
    actual: dict[str, Any]
    expected: dict[str, Any] | None

    @property
    def passed(self) -> bool:
        return self.expected is not None and self.actual == self.expected

    def diff(self) -> list[str]:
        """A unified diff of the expected output against the actual one."""
        before = _pretty(self.expected) if self.expected is not None else []
        return list(
            difflib.unified_diff(
                before, _pretty(self.actual), "expected", "actual", lineterm="", n=2
            )
        )


def run_example(mapping: Mapping, example: Example) -> ExampleRun:
    resources: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    context: Any = None  # as ingestion threads it through a file's records
    for item in read_file(mapping.input, example.input, mapping.input_options):
        if isinstance(item, RecordProblem):
            problems.append(item.to_json())
            continue
        if not mapping.engines_agree(
            item.data, source_id=EXAMPLE_SOURCE, namespace=EXAMPLE_NAMESPACE, context=context
        ):
            text = "the two JSONata engines give this record different answers (ADR 0055)"
            problems.append(
                RecordProblem(item.location, text, "processing", key=item.key).to_json()
            )
        try:
            given = mapping.apply(
                item.data, source_id=EXAMPLE_SOURCE, namespace=EXAMPLE_NAMESPACE, context=context
            )
            context = mapping.carried(item.data, context, namespace=EXAMPLE_NAMESPACE)
            resources.extend(given)
        except RecordNotMapped as exc:
            problems.append(
                RecordProblem(item.location, exc.text, exc.code, key=item.key).to_json()
            )
    actual = {"resources": resources, "problems": problems}
    expected = None
    if example.expected.is_file():
        expected = orjson.loads(example.expected.read_bytes())
    return ExampleRun(example, actual, expected)


def record_example(run: ExampleRun) -> None:
    """Keep the actual output as the expected one (a deliberate re-recording)."""
    run.example.expected.write_bytes(
        orjson.dumps(run.actual, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )


def _pretty(document: Any) -> list[str]:
    return (
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        .decode()
        .splitlines()
    )
