"""The deployment's sources file: which backends the old payer answers from, each read
with which mapping version, replicated or live (ADR 0031).

``sources.toml`` (``PAYERBRIDGE_SOURCES_FILE``, else ``<data dir>/sources.toml``)::

    mapping_dirs = ["mappings"]          # the plan's own mappings, beside the product's

    [[source]]
    id = "enrollment"
    mode = "replicated"                  # files given (sources ingest), mapped and kept
    mapping = "x12-834-enrollment@1.1.0"
    namespace = "plan"                   # the member-id space its Patients share

    [[source]]
    id = "clinical"
    mode = "live"                        # asked at request time, within the budget
    kind = "fhir-server"
    mapping = "fhir-server-quirks@1.0.0"
    base_url = "https://fhir.plan.example/r4"
    budget_seconds = 2.0
    ...

    [[destination]]                      # where received records go (ADR 0053)
    id = "plan-fhir"
    base_url = "https://fhir.plan.example/r4"
    auth = { client_id = "payerbridge", key_file = "keys/plan.jwk" }  # scope system/*.write
    budget_seconds = 3600                # how long one delivery keeps retrying

The file is checked whole when the platform starts: every error is named with its
source and field, and a source whose mapping is not there (or does not read what the
source gives) stops the start rather than answering short later. The built-in store
(``payerbridge import``) is always a source, ``store``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from payerbridge.backends.mapping import BUILT_IN_MAPPINGS, MappingLibrary, MappingRef
from payerbridge.errors import InvalidInput, Issue, MappingError

__all__ = [
    "BUILT_IN_SOURCE",
    "DestinationSpec",
    "LiveSourceSpec",
    "ReplicatedSourceSpec",
    "SourceSpec",
    "Sources",
    "load_sources",
    "sources_path",
]

BUILT_IN_SOURCE = "store"
_SOURCE_ID = re.compile(r"^[a-z][a-z0-9\-]{0,39}$")


def _checked_id(value: str) -> str:
    """A source's or a destination's id: what the file, the API and the logs name it by."""
    if not _SOURCE_ID.match(value):
        raise ValueError("must be 1-40 lowercase letters, digits or '-', starting with a letter")
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    mapping: str
    namespace: str = Field(default="plan", min_length=1, max_length=40)
    description: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value == BUILT_IN_SOURCE:
            raise ValueError(f"'{BUILT_IN_SOURCE}' is the built-in store's id")
        return _checked_id(value)

    @field_validator("mapping")
    @classmethod
    def _mapping(cls, value: str) -> str:
        MappingRef.parse(value)
        return value

    @property
    def mapping_ref(self) -> MappingRef:
        return MappingRef.parse(self.mapping)


class ReplicatedSourceSpec(_Spec):
    """Files given to ``payerbridge sources ingest``, mapped and kept; mapped again by
    ``payerbridge sources remap`` when the mapping changes."""

    mode: Literal["replicated"]


class SmartClientSpec(BaseModel):
    """How we authenticate to a plan's FHIR server: SMART Backend Services."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    key_file: Path  # our private key, a JWK (ES384 or RS384)
    token_url: str | None = None  # else from <base>/.well-known/smart-configuration
    scope: str = "system/*.read"


class LiveSourceSpec(_Spec):
    """A backend asked at request time: a plan's FHIR server."""

    mode: Literal["live"]
    kind: Literal["fhir-server"] = "fhir-server"
    base_url: str = Field(pattern=r"^https?://")
    types: list[str] = Field(min_length=1)
    budget_seconds: float = Field(default=2.0, gt=0, le=60)
    page_size: int = Field(default=200, ge=1, le=1000)
    auth: SmartClientSpec | None = None


class DestinationAuthSpec(SmartClientSpec):
    """As a source's, asking to write: ``system/*.write`` unless told (``per-type``:
    ``system/<Type>.write`` of each of ``types``)."""

    scope: str = "system/*.write"


class DestinationSpec(BaseModel):
    """A plan's FHIR server that every exchange's received record is written to, as
    transaction Bundles (ADR 0053)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["fhir-server"] = "fhir-server"
    base_url: str = Field(pattern=r"^https?://[^/@\s]+(/[^\s]*)?$")
    auth: DestinationAuthSpec | None = None
    types: list[str] | None = Field(default=None, min_length=1)  # None: every type
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    budget_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    max_entries: int = Field(default=500, ge=1, le=5000)  # per transaction Bundle
    description: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _checked_id(value)

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        bad = [t for t in value or () if not re.match(r"^[A-Z][A-Za-z]{1,63}$", t)]
        if bad:
            raise ValueError(f"not FHIR resource type names: {', '.join(bad[:5])}")
        return value


SourceSpec = Annotated[ReplicatedSourceSpec | LiveSourceSpec, Field(discriminator="mode")]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mapping_dirs: list[Path] = Field(default_factory=list)
    source: list[SourceSpec] = Field(default_factory=list)
    destination: list[DestinationSpec] = Field(default_factory=list)


class Sources:
    """The sources of a deployment, checked, with the mappings they use loaded."""

    def __init__(
        self,
        specs: list[ReplicatedSourceSpec | LiveSourceSpec],
        library: MappingLibrary,
        destinations: list[DestinationSpec] | None = None,
    ):
        self.specs = {spec.id: spec for spec in specs}
        self.library = library
        self.destinations = list(destinations or ())

    def __iter__(self) -> Any:
        return iter(self.specs.values())

    def get(self, source_id: str) -> ReplicatedSourceSpec | LiveSourceSpec:
        spec = self.specs.get(source_id)
        if spec is None:
            known = ", ".join(sorted(self.specs)) or "none configured"
            raise InvalidInput(f"no source '{source_id[:40]}' (sources: {known})")
        return spec

    def replicated(self, source_id: str) -> ReplicatedSourceSpec:
        spec = self.get(source_id)
        if not isinstance(spec, ReplicatedSourceSpec):
            raise InvalidInput(f"source '{source_id}' is live: it is asked, not given files")
        return spec

    def live(self) -> list[LiveSourceSpec]:
        return [s for s in self.specs.values() if isinstance(s, LiveSourceSpec)]


def sources_path(configured: Path | None, data_dir: Path) -> Path | None:
    """The sources file: the one configured, else ``sources.toml`` in the data dir when
    there is one."""
    if configured is not None:
        return configured
    default = data_dir / "sources.toml"
    return default if default.is_file() else None


def load_sources(path: Path | None) -> Sources:
    """The sources ``path`` configures (none but the built-in store when it is None);
    InvalidInput naming every error, each with its source and field."""
    if path is None:
        return Sources([], MappingLibrary())
    where = str(path)
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"{where}: the sources file cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{where}: not TOML ({exc})") from None
    try:
        parsed = _File.model_validate(document)
    except ValidationError as exc:
        issues = [
            Issue(f"{where}: {_field(error['loc'], document)}: {error['msg']}")
            for error in exc.errors()
        ]
        raise InvalidInput(
            f"{where}: {len(issues)} error(s) in the sources file", issues=issues
        ) from None
    roots = [BUILT_IN_MAPPINGS] + [
        d if d.is_absolute() else (path.parent / d).resolve() for d in parsed.mapping_dirs
    ]
    issues = [
        Issue(f"{where}: mapping_dirs: {d} is not a directory") for d in roots if not d.is_dir()
    ]
    library = MappingLibrary(r for r in roots if r.is_dir())
    seen: set[str] = set()
    for spec in parsed.source:
        if spec.id in seen:
            issues.append(Issue(f"{where}: source '{spec.id}': the id is used twice"))
        seen.add(spec.id)
        try:
            mapping = library.get(spec.mapping_ref)
        except MappingError as exc:
            issues.append(Issue(f"{where}: source '{spec.id}': mapping: {exc.text}"))
            continue
        if isinstance(spec, LiveSourceSpec) and mapping.input != "fhir":
            issues.append(
                Issue(
                    f"{where}: source '{spec.id}': mapping {mapping.ref} reads {mapping.input}, "
                    "but a FHIR server gives FHIR"
                )
            )
    issues += _destination_issues(where, parsed.destination)
    if issues:
        raise InvalidInput(f"{where}: {len(issues)} error(s) in the sources file", issues=issues)
    return Sources(list(parsed.source), library, list(parsed.destination))


def _destination_issues(where: str, specs: list[DestinationSpec]) -> list[Issue]:
    """What is wrong with the destinations that pydantic cannot see: twice the same id, a
    key file that is not there, a per-type scope without types."""
    issues, seen = [], set()
    for spec in specs:
        label = f"{where}: destination '{spec.id}'"
        if spec.id in seen:
            issues.append(Issue(f"{label}: the id is used twice"))
        seen.add(spec.id)
        if spec.auth is None:
            continue
        if not spec.auth.key_file.is_file():
            issues.append(Issue(f"{label}: auth.key_file: {spec.auth.key_file} is not a file"))
        if spec.auth.scope == "per-type" and not spec.types:
            issues.append(Issue(f"{label}: auth.scope 'per-type' needs types"))
    return issues


def _field(location: tuple[Any, ...], document: dict[str, Any]) -> str:
    """``source 'claims' field mapping`` for pydantic's ('source', 1, 'replicated',
    'mapping')."""
    if (
        len(location) >= 2
        and location[0] in ("source", "destination")
        and isinstance(location[1], int)
    ):
        kind = str(location[0])
        entries = document.get(kind) or []
        entry = entries[location[1]] if location[1] < len(entries) else {}
        name = entry.get("id") if isinstance(entry, dict) else None
        rest = [str(p) for p in location[2:] if p not in ("replicated", "live")]
        label = f"{kind} '{name}'" if isinstance(name, str) else f"{kind} #{location[1] + 1}"
        return f"{label}: {'.'.join(rest) or '(entry)'}"
    return ".".join(str(p) for p in location)
