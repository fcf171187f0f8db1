"""The CapabilityStatement: exactly the interactions and operations this server implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.disclosure.search import INCLUDES, MEMBER_PARAMS, SEARCHABLE
from payerbridge.fhir import codes
from payerbridge.fhir.bulk_member_match import BULK_MEMBER_MATCH_OPERATION, RESULT_SYSTEM
from payerbridge.fhir.provider_member_match import PROVIDER_MEMBER_MATCH_OPERATION
from payerbridge.fhir.resources import SUPPORTED_TYPES
from payerbridge.timestamps import utc_iso

__all__ = ["OurServer", "capability_statement"]

_HREX_IG = "http://hl7.org/fhir/us/davinci-hrex/ImplementationGuide/hl7.fhir.us.davinci-hrex"
_PDEX_IG = "http://hl7.org/fhir/us/davinci-pdex/ImplementationGuide/hl7.fhir.us.davinci-pdex"
_PDEX_SD = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition"
# PDex 2.2's Provider Access server (ADR 0059), named without its version: peers read the
# PDex version we speak payer-to-payer from the guide we declare, and 2.2's must not
# override it (``routing.capabilities`` reads versions from ``instantiates`` too).
PROVIDER_ACCESS_SERVER = (
    "http://hl7.org/fhir/us/davinci-pdex/CapabilityStatement/pdex-provider-access-server"
)


def _versioned(canonical: str, version: str | None) -> str:
    return f"{canonical}|{version}" if version else canonical


def _patient(hrex_version: str | None, everything: bool) -> dict[str, Any]:
    return {
        "type": "Patient",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchRevInclude": ["Provenance:target"],
        "searchParam": [
            {
                "name": "identifier",
                "type": "token",
                "definition": "http://hl7.org/fhir/SearchParameter/Patient-identifier",
                "documentation": "system|value or value alone (any system)",
            },
            {
                "name": "_id",
                "type": "token",
                "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
            },
        ],
        "documentation": "Patient searches take identifier and/or _id, each once, and "
        "_revinclude=Provenance:target; other parameters are refused with 400. Every "
        "answer carries our transmitter Provenance.",
        "operation": [
            {
                "name": "member-match",
                "definition": _versioned(codes.MEMBER_MATCH_OPERATION, hrex_version),
                "documentation": "Answered in the HRex version the request names in "
                "Parameters.meta.profile (1.0.0, 1.1.0 or 1.2.0)"
                + (
                    f", else in {hrex_version}."
                    if hrex_version
                    else ", else in a form each accepts."
                ),
            },
            {
                "name": "export",
                "definition": codes.PATIENT_EXPORT_OPERATION,
                "documentation": "With Prefer: respond-async: the members whose consent names "
                "the client, as Group/[id]/$export gives a Group's (_type names every type "
                "that goes).",
            },
            *(
                [
                    {
                        "name": "everything",
                        "definition": codes.PATIENT_EVERYTHING_OPERATION,
                        "documentation": "Parameters _type, _since (an instant with a time "
                        "zone) and _count; paged by next links; any other parameter is refused "
                        "with 400.",
                    }
                ]
                if everything
                else []
            ),
        ],
    }


def _group_operations() -> list[dict[str, Any]]:
    """The operations on Group: the payer-to-payer ones and Provider Access's."""
    return [
        {
            "name": "bulk-member-match",
            "definition": BULK_MEMBER_MATCH_OPERATION,
            "documentation": "POST with Prefer: respond-async; 202 and a Bulk Data status "
            "URL. The answer is in PDex 2.2's form (Group NDJSON) unless "
            "X-PDex-Spec-Version or Prefer: pdex-spec= asks for 2.1's (one Parameters).",
        },
        {
            "name": "provider-member-match",
            "definition": PROVIDER_MEMBER_MATCH_OPERATION,
            "documentation": "Provider Access (ADR 0059), as bulk-member-match: POST with "
            "Prefer: respond-async; each MemberBundle's Consent is the provider's "
            "treatment attestation. MatchedMembers exports as Provider Access only.",
        },
        {
            "name": "davinci-data-export",
            "definition": codes.DATA_EXPORT_OPERATION,
            "documentation": f"On a MatchedMembers Group, with Prefer: respond-async: "
            f"exportType {codes.PAYER_TO_PAYER_EXPORT} (the default), _type, _since, "
            "_until, patient; _typeFilter is refused with 400, and so are _elements and "
            "includeAssociatedData unless Prefer: handling=lenient (then left out and "
            "named). Only the types the token grants go (the rest named). Each "
            "member's consent is decided when the job reaches it; members left out are "
            "named in the manifest's error file. The member's Patient and our transmitter "
            "Provenance go whatever _type says (PDex). On a provider's Group "
            f"(provider-<NPI>, its organization only): exportType "
            f"{codes.PROVIDER_DOWNLOAD_EXPORT} or {codes.PROVIDER_DELTA_EXPORT} (with "
            "_since), each member decided again by attribution and opt-out.",
        },
        {
            "name": "export",
            "definition": codes.GROUP_EXPORT_OPERATION,
            "documentation": "Bulk Data's export of the same MatchedMembers Group, as "
            "$davinci-data-export does it, except that _type names every type that goes "
            "(the Patient and Provenance too).",
        },
    ]


def _group() -> dict[str, Any]:
    """The result Groups of ``$bulk-member-match`` (PDex payer access): each client's own."""
    npi = "the requesting payer's NPI (system|value or value)"
    result = f"the match result, a {RESULT_SYSTEM} code"
    return {
        "type": "Group",
        "supportedProfile": [
            "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-match-group",
            "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-no-match-group",
            f"{_PDEX_SD}/pdex-provider-group",
            f"{_PDEX_SD}/pdex-provider-member-match",
            f"{_PDEX_SD}/pdex-provider-member-no-match",
            f"{_PDEX_SD}/pdex-member-opt-out",
        ],
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {
                "name": "identifier",
                "type": "token",
                "definition": "http://hl7.org/fhir/SearchParameter/Group-identifier",
                "documentation": npi,
            },
            {
                "name": "characteristic",
                "type": "token",
                "definition": "http://hl7.org/fhir/SearchParameter/Group-characteristic",
                "documentation": result,
            },
            {
                "name": "characteristic-value-reference",
                "type": "reference",
                "definition": "http://hl7.org/fhir/us/davinci-pdex/SearchParameter/"
                "pdex-group-characteristic-value-reference",
                "documentation": f"with the :identifier modifier: {npi}",
            },
            {
                "name": "code",
                "type": "token",
                "definition": "http://hl7.org/fhir/SearchParameter/Group-code",
                "documentation": result,
            },
        ],
        "operation": _group_operations(),
        "documentation": "A client reads and finds only the Groups of its own "
        "$bulk-member-match requests. Values separated by commas are alternatives; a "
        "parameter repeated must hold each time.",
    }


def _security(token_url: str) -> dict[str, Any]:
    """SMART Backend Services: the token endpoint, as the SMART oauth-uris extension
    names it (the full document is at .well-known/smart-configuration)."""
    return {
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": token_url}],
            }
        ],
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": "Every interaction but metadata needs an access token from the token "
        "endpoint (SMART Backend Services: client_credentials with a private_key_jwt "
        "assertion, RS384 or ES384).",
    }


def _resource(resource_type: str) -> dict[str, Any]:
    """Read, and the searches within one member's records where the type has them."""
    params = SEARCHABLE.get(resource_type)
    if params is None:
        return {"type": resource_type, "interaction": [{"code": "read"}]}
    members = MEMBER_PARAMS.get(resource_type, ("patient",))
    return {
        "type": resource_type,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        **({"searchInclude": list(INCLUDES[resource_type])} if resource_type in INCLUDES else {}),
        "searchRevInclude": ["Provenance:target"],
        "searchParam": [
            *(
                {"name": name, "type": "reference", "documentation": "the member (required)"}
                for name in members
            ),
            *(
                {"name": name, "type": "token" if param.kind == "code" else param.kind}
                for name, param in params.items()
            ),
            {"name": "_count", "type": "number", "documentation": "page size"},
        ],
        "documentation": "Searches are within one member's records, decided by that "
        "member's consent and paged by next links; other parameters and modifiers are "
        "refused with 400.",
    }


def _audit_event() -> dict[str, Any]:
    """The audit chain as AuditEvent (IHE BALP), for auditors (ADR 0034)."""
    searched = (
        ("patient", "reference", "events about the member"),
        ("entity", "reference", "events about an entity (Type/id)"),
        ("agent", "token", "events a client caused (its client id)"),
        ("subtype", "token", "our action (https://payerbridge.dev/CodeSystem/audit-action)"),
        ("date", "date", "when recorded (twice for a range)"),
        ("_count", "number", "page size, newest first"),
    )
    return {
        "type": "AuditEvent",
        "supportedProfile": [
            f"{_BALP}/IHE.BasicAudit.PrivacyDisclosure.Source",
            f"{_BALP}/IHE.BasicAudit.PrivacyDisclosure.Recipient",
        ],
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {"name": name, "type": kind, "documentation": text} for name, kind, text in searched
        ],
        "documentation": "Auditors only (scope payerbridge/auditor); the id is the event's "
        "place in the hash chain, which GET /audit/proofs proves (RFC 9162).",
    }


_BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition"


@dataclass(frozen=True)
class OurServer:
    """This server as its CapabilityStatement describes it: where it is, who runs it and
    what software, and what its operator has it declare (``hrex_version`` and
    ``pdex_version``: the guide versions, none named when unset; whether it offers
    ``$everything``)."""

    fhir_base: str
    token_url: str
    software_version: str
    org_name: str
    hrex_version: str | None = None
    pdex_version: str | None = None
    everything: bool = True


def capability_statement(server: OurServer, *, published: datetime) -> dict[str, Any]:
    """Ours, as published at ``published``."""
    fhir_base, token_url, org_name = server.fhir_base, server.token_url, server.org_name
    hrex_version, pdex_version = server.hrex_version, server.pdex_version
    software_version, everything = server.software_version, server.everything
    others = [_resource(t) for t in sorted(SUPPORTED_TYPES - {"Patient"})]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": utc_iso(published),
        "publisher": org_name,
        "kind": "instance",
        "software": {"name": "payerbridge", "version": software_version},
        "implementation": {
            "description": f"payerbridge payer-to-payer API of {org_name}",
            "url": fhir_base,
        },
        "fhirVersion": codes.FHIR_VERSION,
        # Bulk Data clients and test kits look for it before they try an export.
        "instantiates": [codes.BULK_DATA_SERVER, PROVIDER_ACCESS_SERVER],
        "format": ["application/fhir+json", "json"],
        "implementationGuide": [
            _versioned(_HREX_IG, hrex_version),
            _versioned(_PDEX_IG, pdex_version),
        ],
        "rest": [
            {
                "mode": "server",
                "security": _security(token_url),
                "documentation": "Payer-to-payer exchange (HRex $member-match, PDex "
                "$everything and $bulk-member-match). Errors are OperationOutcome resources.",
                "resource": [
                    _patient(hrex_version, everything),
                    _group(),
                    *others,
                    _audit_event(),
                ],
                "operation": [
                    {
                        "name": "export",
                        "definition": codes.SYSTEM_EXPORT_OPERATION,
                        "documentation": "With Prefer: respond-async: everything the client "
                        "may have, which is what Patient/$export gives (the members whose "
                        "consent names it and the shared resources their records reach); "
                        "no patient parameter.",
                    }
                ],
            }
        ],
    }
