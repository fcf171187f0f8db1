"""Declarative, versioned mappings from a backend's records to FHIR resources (ADR 0031).

A mapping is a directory an analyst can review without reading Python::

    <name>/<version>/
        mapping.toml          what it reads, what it produces, its PDex source format
        transform.jsonata     one JSONata expression: a record in, a resource or a list out
        context.jsonata       optional: what a record leaves for the next ones (below)
        conceptmaps/*.json    FHIR ConceptMaps: the local codes it translates
        examples/<case>.<ext> a source file, and <case>.expected.json what it must give

The expression sees the record's data and these functions besides JSONata's own:

- ``$translate(code, conceptMap)``: the Coding a ConceptMap (url or id) gives a local
  code; a code the map does not hold is an error naming the map and the code.
- ``$date(text, field)``: a date in one of the forms backends write (CCYYMMDD,
  CCYY-MM-DD or CCYY-M-D, MM/DD/CCYY, DD-Mon-CCYY, a dateTime) as a FHIR date; anything
  else is an error naming ``field`` (never the value: it may be a birth date).
- ``$id(part, ...)``: a FHIR id derived from the source's namespace and the parts, the
  same on every run, so that a record mapped again replaces what it gave before.

Every resource produced carries the mapping (``meta.tag``, with its version) and the
source (``meta.source``); elements left empty are dropped, as FHIR requires.

Two engines evaluate the one expression (ADR 0055): jsonatapy (Rust) for every record,
and jsonata-python (the port of the reference implementation) for a record the first
cannot map: its answer, or its error with the line of the expression, is the one given.

A record is mapped alone, but some files spread what one record needs over several: an
834 gives a family's subscriber before its dependents, and a dependent's RelatedPerson is
that subscriber. ``context.jsonata``, when the mapping has one, is evaluated on each record
mapped, with ``$context`` what the records before it in the same file left (unbound at
the file's start); what it gives is ``$context`` for the next record's transform and
context (ADR 0058). A record the mapping refuses leaves the context as it was. The
context lives while one file is mapped, in the order the reader gives its records.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonata  # type: ignore[import-untyped]
import jsonatapy
import orjson

from payerbridge.errors import InvalidInput, MappingError

__all__ = [
    "MAPPING_TAG_SYSTEM",
    "SOURCE_FORMATS",
    "BUILT_IN_MAPPINGS",
    "Example",
    "Mapping",
    "MappingLibrary",
    "MappingRef",
    "RecordNotMapped",
    "source_uri",
]

logger = logging.getLogger(__name__)

MAPPING_TAG_SYSTEM = "https://payerbridge.dev/fhir/CodeSystem/mapping"
BUILT_IN_MAPPINGS = Path(__file__).resolve().parent / "mappings"
# PDex's ProvenancePayerDataSource codes (the required binding of sourceFormat).
SOURCE_FORMATS = frozenset(
    [
        "hl7v2other",
        "hl7v2oru",
        "hl7v2adt",
        "hl7v2r01",
        "hl7v2rsp",
        "hl7v2orm",
        "hl7v2mdm",
        "hl7v2vxu",
        "hl7v3",
        "hl7ccda",
        "hl7cda",
        "hl7cdaqrda",
        "hl7fhirdstu2",
        "hl7fhirdstu3",
        "hl7fhirr4",
        "x12837",
        "x12278",
        "x12275",
        "x12other",
        "script",
        "ncpdp",
        "capture",
        "customtx",
        "image",
        "unstructured",
        "other",
    ]
)
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


def source_uri(source_id: str) -> str:
    """``meta.source`` of what a source's records gave."""
    return f"urn:payerbridge:source:{source_id}"


class RecordNotMapped(InvalidInput):
    """A record the mapping refuses: an unknown local code, a date it cannot read, an
    expression that failed on it. ``text`` is fit for an operator (no demographics);
    ``code`` is the OperationOutcome issue code of the problem it becomes."""

    reason_code = "record-not-mapped"

    def __init__(self, text: str, code: str = "invalid") -> None:
        super().__init__(text)
        self.code = code


@dataclass(frozen=True, order=True)
class MappingRef:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def parse(cls, text: str) -> MappingRef:
        name, at, version = text.partition("@")
        if not at or not _NAME.match(name) or not _VERSION.match(version):
            raise ValueError(
                f"'{text[:80]}' is not a mapping reference: write name@version, e.g. "
                "x12-837-eob@1.0.0"
            )
        return cls(name, version)


@dataclass(frozen=True)
class Example:
    name: str
    input: Path
    expected: Path


@dataclass(frozen=True)
class _ConceptMap:
    url: str
    targets: dict[tuple[str | None, str], dict[str, str]]  # (source system, code) -> Coding


@dataclass
class Mapping:
    """One mapping version, loaded and compiled; ``apply`` is pure."""

    ref: MappingRef
    directory: Path
    description: str
    source_format: str
    input: str  # the reader: x12, ncpdp, csv, fixed-width, fhir
    input_options: dict[str, Any]
    produces: frozenset[str]
    examples: list[Example]
    _expression: Any = field(repr=False)  # the reference engine's
    _fast: _FastExpression = field(repr=False)  # jsonatapy's
    _concept_maps: dict[str, _ConceptMap] = field(repr=False)
    # context.jsonata, when the mapping has one: the reference engine's and jsonatapy's.
    _context: tuple[Any, _FastExpression] | None = field(default=None, repr=False)

    @property
    def tag(self) -> dict[str, str]:
        return {"system": MAPPING_TAG_SYSTEM, "code": self.ref.name, "version": self.ref.version}

    def apply(
        self,
        data: dict[str, Any],
        *,
        source_id: str,
        namespace: str,
        member: str | None = None,
        context: Any = None,
    ) -> list[dict[str, Any]]:
        """The resources ``data`` (one record) gives; RecordNotMapped when it cannot.
        The expression sees ``$source`` and, for a live source's answer about one member,
        ``$patient``: the id of that member's Patient here; ``$context``: what the file's
        records before this one left (``carried``), when they left something."""
        bindings = _bindings(source=source_id, patient=member, context=context)
        engines = (self._expression, self._fast)
        result = self._evaluate(engines, "transform.jsonata", data, bindings, namespace)
        return [self._stamped(r, source_id) for r in _resources(result, self)]

    def carried(self, data: dict[str, Any], context: Any, *, namespace: str) -> Any:
        """What ``data`` (a record just mapped) leaves for the next records of its file:
        its ``context.jsonata`` with ``$context`` bound to ``context``; ``context`` itself
        when the mapping has none. RecordNotMapped when the expression fails on it."""
        if self._context is None:
            return context
        bindings = _bindings(context=context)
        return self._evaluate(self._context, "context.jsonata", data, bindings, namespace)

    def engines_agree(
        self, data: dict[str, Any], *, source_id: str, namespace: str, context: Any = None
    ) -> bool:
        """Whether both engines give the record the same answer (or both fail): what a
        mapping's examples are held to (ADR 0055)."""
        outcomes = []
        bindings = _bindings(source=source_id, context=context)
        for engine in (self._fast.expression(), self._expression):
            try:
                with _functions(self, namespace):
                    given = engine.evaluate(dict(data), bindings)
                outcomes.append(("gave", given))
            except (ValueError, RecordNotMapped, jsonata.JException):
                outcomes.append(("failed", None))
        return outcomes[0] == outcomes[1]

    def _evaluate(
        self,
        engines: tuple[Any, _FastExpression],
        file_name: str,
        data: dict[str, Any],
        bindings: dict[str, Any],
        namespace: str,
    ) -> Any:
        """What an expression (``file_name``: the reference engine's and jsonatapy's)
        gives the record: jsonatapy's answer, else the reference engine's answer or error."""
        reference, fast = engines
        try:
            with _functions(self, namespace):
                return fast.expression().evaluate(data, bindings)
        except ValueError:  # an error, or one of our functions refused: the reference says which
            return self._reference(reference, file_name, data, bindings, namespace)

    def _reference(
        self,
        expression: Any,
        file_name: str,
        data: dict[str, Any],
        bindings: dict[str, Any],
        namespace: str,
    ) -> Any:
        """What the reference engine gives the record, or the error it names (with the
        expression's line), as RecordNotMapped."""
        try:
            with _functions(self, namespace):
                result = expression.evaluate(dict(data), bindings)
        except RecordNotMapped:
            raise
        except jsonata.JException as exc:
            raise RecordNotMapped(
                f"mapping {self.ref} failed on this record at "
                f"{self._where(exc, file_name)}: {_brief(exc)}",
                "processing",
            ) from None
        logger.warning("mapping engines differ", extra={"mapping": str(self.ref)})
        return result

    def _stamped(self, resource: dict[str, Any], source_id: str) -> dict[str, Any]:
        kept: dict[str, Any] = _pruned(resource)
        resource_type, resource_id = kept.get("resourceType"), kept.get("id")
        if resource_type not in self.produces:
            raise RecordNotMapped(
                f"mapping {self.ref} produced a {str(resource_type)[:40]}, which its "
                f"mapping.toml does not list in produces ({', '.join(sorted(self.produces))})",
                "processing",
            )
        if not isinstance(resource_id, str) or not _ID.match(resource_id):
            raise RecordNotMapped(
                f"mapping {self.ref} produced a {resource_type} without a valid id "
                "(use $id(...) for one)",
                "processing",
            )
        meta = dict(kept.get("meta") or {})
        meta["source"] = source_uri(source_id)
        meta["tag"] = [t for t in meta.get("tag", []) if t.get("system") != MAPPING_TAG_SYSTEM] + [
            self.tag
        ]
        kept["meta"] = meta
        return kept

    def _where(self, exc: Any, file_name: str = "transform.jsonata") -> str:
        position = getattr(exc, "location", None)
        return _line_of(self.directory / file_name, position)

    def translate(self, code: Any, concept_map: Any, system: Any = None) -> dict[str, str]:
        found = self._concept_maps.get(str(concept_map))
        if found is None:
            raise RecordNotMapped(
                f"mapping {self.ref} asks for ConceptMap '{str(concept_map)[:120]}', which it "
                "does not ship (conceptmaps/)",
                "processing",
            )
        key = (None if system is None else str(system), str(code))
        target = found.targets.get(key) or found.targets.get((None, str(code)))
        if target is None:
            raise RecordNotMapped(
                f"the local code '{str(code)[:40]}' is not in ConceptMap {found.url} "
                f"(mapping {self.ref}): add it to the map or correct the source",
                "code-invalid",
            )
        return dict(target)


def _bindings(**values: Any) -> dict[str, Any]:
    """An expression's variables: those given a value; the others stay unbound, so that
    ``$exists($patient)`` or ``$exists($context)`` is false."""
    return {name: value for name, value in values.items() if value is not None}


class _Namespace(threading.local):
    """The functions an expression calls are bound per call; the mapping and source
    namespace they need are set around ``evaluate``, in the thread that evaluates."""

    mapping: Mapping | None = None
    namespace: str = ""


_CURRENT = _Namespace()


class _functions:
    def __init__(self, mapping: Mapping, namespace: str) -> None:
        self.mapping, self.namespace = mapping, namespace

    def __enter__(self) -> None:
        _CURRENT.mapping, _CURRENT.namespace = self.mapping, self.namespace

    def __exit__(self, *_: object) -> None:
        _CURRENT.mapping = None


def _translate(code: Any, concept_map: Any, system: Any = None) -> dict[str, str] | None:
    if code is None:
        return None
    assert _CURRENT.mapping is not None
    return _CURRENT.mapping.translate(code, concept_map, system)


def _derived_id(*parts: Any) -> str:
    text = "\x1f".join([_CURRENT.namespace, *("" if p is None else str(p) for p in parts)])
    digest = hashlib.sha256(text.encode()).digest()[:20]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def _date(text: Any, field_name: Any = "a date") -> str | None:
    if text is None or text == "":
        return None
    return parse_source_date(str(text), str(field_name))


def parse_source_date(text: str, field_name: str) -> str:
    """A backend's date as a FHIR date; RecordNotMapped naming ``field_name`` when it is
    not one of the forms backends write (the value is never repeated: PHI)."""
    value = text.strip()
    try:
        if re.fullmatch(r"\d{8}", value):
            return date(int(value[:4]), int(value[4:6]), int(value[6:])).isoformat()
        if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value):
            return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        if m := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", value):
            return date(int(m[3]), int(m[1]), int(m[2])).isoformat()
        if m := re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})", value):
            return date(int(m[3]), _MONTHS[m[2].lower()], int(m[1])).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})?", value):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except (ValueError, KeyError):
        pass
    raise RecordNotMapped(
        f"{field_name} is not a date this mapping reads (CCYYMMDD, CCYY-MM-DD, MM/DD/CCYY or "
        "DD-Mon-CCYY)",
        "value",
    )


def _brief(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _line_of(path: Path, position: Any) -> str:
    if not isinstance(position, int):
        return f"{path.name}"
    try:
        text = path.read_text()
    except OSError:
        return f"{path.name}"
    before = text[: max(0, position)]
    return f"{path.name} line {before.count(chr(10)) + 1}"


def _resources(result: Any, mapping: Mapping) -> list[dict[str, Any]]:
    if result is None:
        return []
    items = result if isinstance(result, list) else [result]
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("resourceType"), str):
            raise RecordNotMapped(
                f"mapping {mapping.ref} gave something that is not a resource (an object "
                "with resourceType)",
                "processing",
            )
        out.append(item)
    return out


_EMPTIABLE = (str, list, dict)


def _pruned(value: Any) -> Any:
    """Without nulls, empty strings, empty arrays and empty objects: FHIR allows none.
    (One pass, no equality tests: it runs on every resource a large file maps to.)"""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            item = _pruned(item)
            if item is not None and (item or not isinstance(item, _EMPTIABLE)):
                kept[key] = item
        return kept
    if isinstance(value, list):
        items = []
        for item in value:
            item = _pruned(item)
            if item is not None and (item or not isinstance(item, _EMPTIABLE)):
                items.append(item)
        return items
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _compiled(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise MappingError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        expression = jsonata.Jsonata(text)
    except jsonata.JException as exc:
        raise MappingError(
            f"{path.parent}/{_line_of(path, getattr(exc, 'location', None))}: {_brief(exc)}"
        ) from None
    expression.register_lambda("translate", _translate)
    expression.register_lambda("date", _date)
    expression.register_lambda("id", _derived_id)
    return expression


# A Python function's None is JSONata's null in jsonatapy but "undefined" in the reference
# engine ($exists, "=", "&" and arrays tell them apart): our functions that may give
# nothing are wrapped in JSONata lambdas that turn null into undefined (an unbound name).
_FAST_PRELUDE = (
    "($date := function($t, $f) {($r := $pbDate($t, $f); $r = null ? $pbNothing : $r)};"
    " $translate := function($c, $m, $s) {($r := $pbTranslate($c, $m, $s);"
    " $r = null ? $pbNothing : $r)};\n"
)


class _FastExpression:
    """The expression compiled for jsonatapy once per thread that evaluates it: its
    compiled form may not cross threads (a live source maps in the server's threads)."""

    def __init__(self, text: str) -> None:
        self._text = f"{_FAST_PRELUDE}({text}\n))"
        self._local = threading.local()

    def expression(self) -> Any:
        compiled = getattr(self._local, "compiled", None)
        if compiled is None:
            compiled = jsonatapy.compile(self._text)
            compiled.register("pbTranslate", _translate)
            compiled.register("pbDate", _fast_date)
            compiled.register("id", _derived_id)
            self._local.compiled = compiled
        return compiled


def _fast_date(text: Any, field_name: Any) -> str | None:
    """``$date`` with its field name left out (the lambda passes null for it)."""
    return _date(text) if field_name is None else _date(text, field_name)


def _concept_map(path: Path) -> _ConceptMap:
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise MappingError(f"{path}: not a readable JSON ConceptMap ({_brief(exc)})") from None
    if not isinstance(document, dict) or document.get("resourceType") != "ConceptMap":
        raise MappingError(f"{path}: not a ConceptMap")
    url = document.get("url")
    if not isinstance(url, str):
        raise MappingError(f"{path}: the ConceptMap has no url")
    targets: dict[tuple[str | None, str], dict[str, str]] = {}
    for group_index, group in enumerate(document.get("group") or []):
        target_system = group.get("target")
        if not isinstance(target_system, str):
            raise MappingError(f"{path}: group[{group_index}] has no target system")
        for element_index, element in enumerate(group.get("element") or []):
            where = f"{path}: group[{group_index}].element[{element_index}]"
            code = element.get("code")
            equivalent = [
                t
                for t in element.get("target") or []
                if t.get("equivalence", "equivalent")
                in ("equivalent", "equal", "wider", "subsumes", "relatedto")
            ]
            if not isinstance(code, str) or len(equivalent) != 1:
                raise MappingError(f"{where}: needs a code and exactly one usable target")
            coding = {"system": target_system, "code": str(equivalent[0]["code"])}
            if equivalent[0].get("display"):
                coding["display"] = str(equivalent[0]["display"])
            targets[(group.get("source"), code)] = coding
            targets.setdefault((None, code), coding)
    cm = _ConceptMap(url, targets)
    return cm


def load_mapping(directory: Path) -> Mapping:
    """The mapping in ``directory`` (``<name>/<version>``); MappingError naming the file
    and what is wrong."""
    manifest_path = directory / "mapping.toml"
    try:
        manifest = tomllib.loads(manifest_path.read_text())
    except OSError as exc:
        raise MappingError(f"{manifest_path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{manifest_path}: {exc}") from None
    problems = []
    name, version = manifest.get("name"), manifest.get("version")
    if name != directory.parent.name or version != directory.name:
        problems.append(
            f"name and version ({name}@{version}) must be those of its directory "
            f"({directory.parent.name}@{directory.name})"
        )
    source_format = manifest.get("source_format")
    if source_format not in SOURCE_FORMATS:
        problems.append(
            f"source_format '{source_format}' is not a PDex ProvenancePayerDataSource code"
        )
    reader = manifest.get("input")
    if not isinstance(reader, str):
        problems.append("input (the reader: x12, ncpdp, csv, fixed-width or fhir) is missing")
    produces = manifest.get("produces")
    if not isinstance(produces, list) or not produces:
        problems.append("produces (the resource types it gives) is missing")
    options = manifest.get("input_options", {})
    if not isinstance(options, dict):
        problems.append("input_options must be a table")
    unknown = set(manifest) - {
        "name",
        "version",
        "description",
        "source_format",
        "input",
        "input_options",
        "produces",
    }
    if unknown:
        problems.append(f"unknown keys: {', '.join(sorted(unknown))}")
    if problems:
        raise MappingError(f"{manifest_path}: " + "; ".join(problems))
    assert isinstance(name, str) and isinstance(version, str) and isinstance(reader, str)
    assert isinstance(produces, list)
    concept_maps: dict[str, _ConceptMap] = {}
    for path in sorted((directory / "conceptmaps").glob("*.json")):
        cm = _concept_map(path)
        concept_maps[cm.url] = cm
        concept_maps[path.stem] = cm
    examples = [
        Example(p.name.split(".", 1)[0], p, p.with_name(p.name.split(".", 1)[0] + ".expected.json"))
        for p in sorted((directory / "examples").glob("*"))
        if not p.name.endswith(".expected.json") and p.is_file()
    ]
    return Mapping(
        ref=MappingRef(name, version),
        directory=directory,
        description=str(manifest.get("description", "")),
        source_format=str(source_format),
        input=reader,
        input_options=dict(options),
        produces=frozenset(str(t) for t in produces),
        examples=examples,
        _expression=_compiled(directory / "transform.jsonata"),
        _fast=_FastExpression((directory / "transform.jsonata").read_text()),
        _concept_maps=concept_maps,
        _context=_context_of(directory / "context.jsonata"),
    )


def _context_of(path: Path) -> tuple[Any, _FastExpression] | None:
    """A mapping's ``context.jsonata``, compiled for both engines; None without one."""
    if not path.is_file():
        return None
    return _compiled(path), _FastExpression(path.read_text())


class MappingLibrary:
    """The mappings a deployment can use: the product's own and those in the
    directories its sources file names, each by name and version. A later directory's
    version of a name overrides an earlier one's."""

    def __init__(self, roots: Iterable[Path] = (BUILT_IN_MAPPINGS,)) -> None:
        self.roots = list(roots)
        self._found: dict[MappingRef, Path] = {}
        for root in self.roots:
            for manifest in sorted(root.glob("*/*/mapping.toml")):
                directory = manifest.parent
                self._found[MappingRef(directory.parent.name, directory.name)] = directory
        self._loaded: dict[MappingRef, Mapping] = {}

    def refs(self) -> list[MappingRef]:
        return sorted(self._found)

    def has(self, ref: MappingRef) -> bool:
        return ref in self._found

    def get(self, ref: MappingRef) -> Mapping:
        if ref not in self._loaded:
            directory = self._found.get(ref)
            if directory is None:
                known = ", ".join(str(r) for r in self.refs() if r.name == ref.name)
                raise MappingError(
                    f"no mapping {ref}" + (f" (known versions: {known})" if known else "")
                )
            self._loaded[ref] = load_mapping(directory)
        return self._loaded[ref]
