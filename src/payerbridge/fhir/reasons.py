"""Reason codes on the wire, each with a link to its runbook.

An OperationOutcome issue that has a reason code (``errors.PayerBridgeError.reason_code``:
``no-match``, a consent's ``expired``, ``client-rate-limited``...) says it twice: as a
Coding of our CodeSystem ``REASON_SYSTEM`` in ``issue.details.coding`` (after any Coding
HRex or a partner reads there, which stays first and unchanged), and as the address of
its runbook in the issue's extension ``RUNBOOK_EXTENSION`` (``valueUrl``)::

    {"severity": "error", "code": "not-found",
     "details": {"coding": [{"system": REASON_SYSTEM, "code": "no-match"}], "text": "..."},
     "extension": [{"url": RUNBOOK_EXTENSION,
                    "valueUrl": "https://payer.example/runbooks/no-match"}]}

The runbooks are ``docs/runbooks/<code>.md``, which the platform serves at
``/runbooks/<code>``. Where the links point is set once per process from the settings
(``link_runbooks_to``, by the edges that start: the API and the CLI), as logging is:
this server's own ``/runbooks`` unless ``runbook_url`` names another place.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

__all__ = [
    "CODE_PLACEHOLDER",
    "REASON_SYSTEM",
    "RUNBOOK_EXTENSION",
    "link_runbooks_to",
    "reason_coding",
    "runbook_extension",
    "runbook_url",
]

REASON_SYSTEM = "https://payerbridge.dev/fhir/CodeSystem/reason"
RUNBOOK_EXTENSION = "https://payerbridge.dev/fhir/StructureDefinition/runbook"
CODE_PLACEHOLDER = "{code}"

# Until an edge links them (a process that only builds outcomes, such as a test): this
# server's path, relative.
_template = "/runbooks/" + CODE_PLACEHOLDER


def link_runbooks_to(template: str) -> None:
    """Point every runbook link of this process at ``template``, an address with
    ``{code}`` where the reason code goes (``https://payer.example/runbooks/{code}``)."""
    global _template
    if CODE_PLACEHOLDER not in template:
        raise ValueError(f"a runbook address needs {CODE_PLACEHOLDER} where the code goes")
    _template = template


def runbook_url(code: str) -> str:
    """The address of the runbook of ``code`` (for the console, the CLI, an outcome)."""
    return _template.replace(CODE_PLACEHOLDER, quote(code, safe=""))


def reason_coding(code: str) -> dict[str, str]:
    return {"system": REASON_SYSTEM, "code": code}


def runbook_extension(code: str) -> dict[str, Any]:
    return {"url": RUNBOOK_EXTENSION, "valueUrl": runbook_url(code)}
