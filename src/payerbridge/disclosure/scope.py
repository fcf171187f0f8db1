"""The data scope of a purpose (pure): which resource types, states and elements may leave
for it, read from a versioned file that cites where each rule comes from
(``data/payer-to-payer-scope.json``, or the operator's ``PAYERBRIDGE_SCOPE_FILE``).

Consent and segmentation decide whose data goes and what a member's consent withholds;
the scope is what the rule lets go at all, whatever the consent says. For
payer-to-payer (CMS-0057-F; PDex 2.1+): the types of PDex's data set and the USCDI,
claims in CARIN BB's non-financial (Basis) shape, without provider remittances and
enrollee cost-sharing, and no prior authorization for a drug. A record the scope leaves
out is left out like one outside the five-year window: after segmentation has judged the
compartment with it. What shaping removes is named (``Type.element``) for the audit trail.

Shaping never changes the stored record: it copies the path down to what it removes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from payerbridge.compliance.calendar import FileFieldError, first_error
from payerbridge.consent.categories import canonical_system
from payerbridge.errors import Issue
from payerbridge.fhir.resources import is_source_record
from payerbridge.json_paths import codings, element_path

__all__ = [
    "ANOTHER_PAYERS_PATIENT",
    "DRUG_PRIOR_AUTHORIZATION",
    "NOT_IN_SCOPE",
    "PAYER_TO_PAYER",
    "PROVIDER_ACCESS",
    "WHOLE_RECORD",
    "DataScope",
    "ReleaseScope",
    "WholeRecord",
    "ScopeError",
    "load_scope",
    "scope_issue",
    "shipped_scope",
]

Resource = dict[str, Any]

# Why the scope leaves a record out, as the audit trail names it.
NOT_IN_SCOPE = "type-not-in-scope"
DRUG_PRIOR_AUTHORIZATION = "drug-prior-authorization"
# Another payer's Patient for the member, kept beside ours (ADR 0054): its identifiers are
# that plan's; what is the member's goes with our Patient, never a second one.
ANOTHER_PAYERS_PATIENT = "another-payers-patient"


class ScopeError(FileFieldError):
    """A data scope file that cannot be used: ``field`` names where."""

    reason_code = "compliance-file-invalid"  # its runbook: the rule's files


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


_Text = Annotated[str, Field(min_length=1, max_length=2000)]
_Path = Annotated[str, Field(pattern=r"^[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)*$", max_length=200)]
_TypeName = Annotated[str, Field(pattern=r"^[A-Z][A-Za-z]+$", max_length=64)]


class _Source(_Strict):
    citation: _Text
    document: _Text
    confirmed: bool
    note: _Text | None = None


class _ResourceRule(_Strict):
    resource_type: _TypeName = Field(alias="type")
    source: str


class _Coding(_Strict):
    system: _Text
    code: _Text


class _DrugPriorAuthorizations(_Strict):
    source: str
    title: _Text
    claim_types: tuple[_Coding, ...] = Field(alias="claimTypes")
    product_systems: tuple[_Text, ...] = Field(alias="productSystems", min_length=1)
    hcpcs_systems: tuple[_Text, ...] = Field(alias="hcpcsSystems")
    hcpcs_drug_prefixes: tuple[Annotated[str, Field(min_length=1, max_length=5)], ...] = Field(
        alias="hcpcsDrugPrefixes"
    )
    note: _Text | None = None


class _Removed(_Strict):
    path: _Path
    what: _Text
    resource_type: _TypeName | None = Field(default=None, alias="resourceType")


class _AppliesTo(_Strict):
    resource_type: _TypeName = Field(alias="resourceType")
    except_use: tuple[str, ...] = Field(default=(), alias="exceptUse")


class _NonFinancialClaims(_Strict):
    source: str
    title: _Text
    applies_to: _AppliesTo = Field(alias="appliesTo")
    removed: tuple[_Removed, ...] = Field(min_length=1)
    emptied_adjudications: tuple[_Path, ...] = Field(alias="emptiedAdjudications")
    profiles: dict[str, str]


class _CostSharing(_Strict):
    source: str
    title: _Text
    removed: tuple[_Removed, ...]

    @model_validator(mode="after")
    def _typed(self) -> _CostSharing:
        for n, item in enumerate(self.removed):
            if item.resource_type is None:
                raise ValueError(f"removed.{n}.resourceType is required here")
        return self


class _File(_Strict):
    purpose: Annotated[str, Field(pattern=r"^[a-z][a-z-]*$", max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=64)]
    description: _Text
    sources: dict[str, _Source] = Field(min_length=1)
    resources: tuple[_ResourceRule, ...] = Field(min_length=1)
    drug_prior_authorizations: _DrugPriorAuthorizations = Field(alias="drugPriorAuthorizations")
    non_financial_claims: _NonFinancialClaims = Field(alias="nonFinancialClaims")
    cost_sharing: _CostSharing = Field(alias="costSharing")


# What shaping removes, as a tree of element names, each with its name as the audit trail
# gives it and whether it is a list of adjudications to prune: a leaf (no branch) is
# removed, a branch is walked (through lists at every level); one walk per resource.
@dataclass(frozen=True, slots=True)
class _Node:
    name: str  # Type.element.path
    below: dict[str, _Node] | None  # None: removed whole
    prune: bool  # adjudications left with only their category go too


def _tree(
    resource_type: str, paths: Iterable[tuple[str, ...]], emptied: frozenset[str] = frozenset()
) -> dict[str, _Node]:
    nested: dict[str, Any] = {}
    for steps in paths:
        level = nested
        for step in steps[:-1]:
            level = level.setdefault(step, {})
            if level is None:
                break
        else:
            level[steps[-1]] = None

    def build(level: dict[str, Any], prefix: tuple[str, ...]) -> dict[str, _Node]:
        nodes = {}
        for step, below in level.items():
            path = (*prefix, step)
            nodes[step] = _Node(
                ".".join((resource_type, *path)),
                None if below is None else build(below, path),
                ".".join(path) in emptied,
            )
        return nodes

    return build(nested, ())


class DataScope:
    """What a purpose lets leave (see the module's docstring)."""

    def __init__(self, parsed: _File) -> None:
        self.purpose = parsed.purpose
        self.version = parsed.version
        self.types = frozenset(rule.resource_type for rule in parsed.resources)
        drugs = parsed.drug_prior_authorizations
        self._drug_claim_types = frozenset(
            (canonical_system(c.system), c.code.strip()) for c in drugs.claim_types
        )
        self._drug_systems = frozenset(canonical_system(s) for s in drugs.product_systems)
        self._hcpcs_systems = frozenset(canonical_system(s) for s in drugs.hcpcs_systems)
        self._hcpcs_drug_prefixes = tuple(p.upper() for p in drugs.hcpcs_drug_prefixes)
        claims = parsed.non_financial_claims
        self._claim_type = claims.applies_to.resource_type
        self._claim_uses_kept = frozenset(claims.applies_to.except_use)
        self._claim_removals = _tree(
            self._claim_type,
            (tuple(r.path.split(".")) for r in claims.removed),
            frozenset(claims.emptied_adjudications),
        )
        self._profiles = dict(claims.profiles)
        by_type: dict[str, list[tuple[str, ...]]] = {}
        for removed in parsed.cost_sharing.removed:
            by_type.setdefault(str(removed.resource_type), []).append(
                tuple(removed.path.split("."))
            )
        self._other_removals = {k: _tree(k, v) for k, v in by_type.items()}

    @property
    def label(self) -> str:
        """What the audit trail records a decision was made under."""
        return f"{self.purpose}@{self.version}"

    def excludes(self, resource: Mapping[str, Any]) -> str | None:
        """Why the scope leaves ``resource`` out (``NOT_IN_SCOPE``,
        ``DRUG_PRIOR_AUTHORIZATION``, ``ANOTHER_PAYERS_PATIENT``), or None when it may go."""
        resource_type = resource.get("resourceType")
        if resource_type not in self.types:
            return NOT_IN_SCOPE
        if resource_type == "Patient" and is_source_record(resource):
            return ANOTHER_PAYERS_PATIENT
        if (
            resource_type == "ExplanationOfBenefit"
            and resource.get("use") == "preauthorization"
            and self._is_for_a_drug(resource)
        ):
            return DRUG_PRIOR_AUTHORIZATION
        return None

    def shaped(self, resource: Resource) -> tuple[Resource, tuple[str, ...]]:
        """``resource`` as the scope lets it go, and the elements it removed (by name,
        ``Type.element``); ``resource`` itself when nothing is removed."""
        resource_type = resource.get("resourceType")
        if resource_type == self._claim_type:
            if resource.get("use") in self._claim_uses_kept:
                return resource, ()
            return self._non_financial(resource)
        removals = self._other_removals.get(str(resource_type))
        if not removals:
            return resource, ()
        removed: set[str] = set()
        shaped = _walk(resource, removals, removed)
        return shaped, tuple(sorted(removed))

    def _non_financial(self, claim: Resource) -> tuple[Resource, tuple[str, ...]]:
        found: set[str] = set()
        shaped = _walk(claim, self._claim_removals, found)
        removed = tuple(sorted(found))
        profiles = (shaped.get("meta") or {}).get("profile")
        if isinstance(profiles, list) and any(
            _canonical(p) in self._profiles for p in profiles if isinstance(p, str)
        ):
            meta = dict(shaped["meta"])
            meta["profile"] = [self._basis(p) if isinstance(p, str) else p for p in profiles]
            shaped = {**shaped, "meta": meta}
        return shaped, removed

    def _basis(self, profile: str) -> str:
        url, bar, version = profile.partition("|")
        basis = self._profiles.get(url)
        return f"{basis}{bar}{version}" if basis else profile

    def _is_for_a_drug(self, authorization: Mapping[str, Any]) -> bool:
        for coding in codings([authorization.get("type")]):
            system = canonical_system(str(coding.get("system") or ""))
            if (system, str(coding.get("code")).strip()) in self._drug_claim_types:
                return True
        for path in _PRODUCTS:
            for coding in codings(path.values(authorization)):
                system = canonical_system(str(coding.get("system") or ""))
                if system in self._drug_systems:
                    return True
                code = str(coding.get("code") or "").strip().upper()
                if system in self._hcpcs_systems and code.startswith(self._hcpcs_drug_prefixes):
                    return True
        return False


def load_scope(text: str | bytes) -> DataScope:
    """The scope of a file's JSON; ScopeError names the first field at fault."""
    try:
        parsed = _File.model_validate_json(text)
    except ValidationError as exc:
        raise ScopeError(*first_error(exc)) from None
    cited = [("resources", n, rule.source) for n, rule in enumerate(parsed.resources)] + [
        ("drugPriorAuthorizations", None, parsed.drug_prior_authorizations.source),
        ("nonFinancialClaims", None, parsed.non_financial_claims.source),
        ("costSharing", None, parsed.cost_sharing.source),
    ]
    for field, n, source in cited:
        if source not in parsed.sources:
            where = f"{field}.{n}.source" if n is not None else f"{field}.source"
            raise ScopeError(where, f"'{source}' is not among the sources")
    seen: set[str] = set()
    for n, rule in enumerate(parsed.resources):
        if rule.resource_type in seen:
            raise ScopeError(f"resources.{n}.type", f"'{rule.resource_type}' is given twice")
        seen.add(rule.resource_type)
    if "Patient" not in seen:
        raise ScopeError("resources", "Patient must be in scope: every answer is about one")
    return DataScope(parsed)


def shipped_scope(purpose: str = "payer-to-payer") -> DataScope:
    """A scope the platform ships: payer-to-payer's, or Provider Access's (ADR 0059)."""
    text = files("payerbridge.disclosure").joinpath(f"data/{purpose}-scope.json").read_text()
    return load_scope(text)


def scope_issue(removed: Iterable[str]) -> Issue:
    """What a page tells its reader about the elements the scope removed from it."""
    return Issue(
        "sent as the payer-to-payer rule lets these go: claims in the non-financial shape "
        "(CARIN BB Basis), without provider remittances and enrollee cost-sharing; removed: "
        + ", ".join(sorted(set(removed))),
        code="informational",
    )


def _canonical(profile: str) -> str:
    return profile.partition("|")[0]


# What every line, detail and sub-detail (added ones too) of a claim is for.
_PRODUCTS = tuple(
    element_path(f"{line}.productOrService")
    for line in (
        "item",
        "item.detail",
        "item.detail.subDetail",
        "addItem",
        "addItem.detail",
        "addItem.detail.subDetail",
    )
)


def _walk(node: Resource, tree: dict[str, _Node], found: set[str]) -> Resource:
    """``node`` without what ``tree`` removes, copied only along the way to what is
    removed, the removed elements' names added to ``found``."""
    changed: dict[str, Any] = {}
    dropped: list[str] = []
    for name, step in tree.items():
        value = node.get(name)
        if value is None:
            continue
        below = step.below
        if below is None:
            dropped.append(name)
            found.add(step.name)
        elif type(value) is dict:
            child = _walk(value, below, found)
            if child is not value:
                changed[name] = child
        elif type(value) is list:
            items = [_walk(i, below, found) if type(i) is dict else i for i in value]
            if any(a is not b for a, b in zip(items, value, strict=True)):
                if step.prune:
                    items = [a for a in items if not _said_only_an_amount(a)]
                changed[name] = items
    if not changed and not dropped:
        return node
    shaped = {k: v for k, v in node.items() if k not in dropped}
    for name, value in changed.items():
        if value:
            shaped[name] = value
        else:  # every entry said only an amount: the element goes
            del shaped[name]
    return shaped


# An adjudication that kept only these said nothing but the amount removed from it.
_EMPTY_ADJUDICATION = frozenset({"category", "id"})


def _said_only_an_amount(adjudication: Any) -> bool:
    return isinstance(adjudication, dict) and adjudication.keys() <= _EMPTY_ADJUDICATION


PAYER_TO_PAYER = shipped_scope()  # the shipped file; a plan's own comes from bootstrap
PROVIDER_ACCESS = shipped_scope("provider-access")  # what goes to an attributed provider


class WholeRecord:
    """The scope of the plan's own organization reading its own members' records (ADR
    0052): every record it holds, nothing shaped. The rule's scope limits what leaves for
    another payer; what the plan holds is its own."""

    purpose = "own-records"
    version = "1"

    def __init__(self, *, labels: bool = True) -> None:
        self.labels = labels  # each resource labelled by how a regular consent treats it

    @property
    def label(self) -> str:
        return f"{self.purpose}@{self.version}"

    def excludes(self, resource: Mapping[str, Any]) -> str | None:
        return None

    def shaped(self, resource: Resource) -> tuple[Resource, tuple[str, ...]]:
        return resource, ()


WHOLE_RECORD = WholeRecord()
# What a release is shaped by: the rule's scope for a purpose, or the whole record.
ReleaseScope = DataScope | WholeRecord
