"""Searching the audit chain as FHIR searches AuditEvent (pure): the parameters read and
checked, every unknown, repeated or malformed one named.

    patient=<id>|Patient/<id>   entity=<Type>/<id>   agent=<client id>
    subtype=<our action, e.g. exchange.transition>   date=[prefix]<date> (twice for a range)
    _count=1..200   _cursor=<the next link's>

Newest first by ``seq``; a page continues before the last event shown (keyset, no
OFFSET). ``patient`` and ``entity`` run on the entity index; ``agent``, ``subtype`` and
``date`` alone filter the chain read from its newest event (fine for recent windows;
name an entity for older ones).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from payerbridge.audit.model import AuditQuery
from payerbridge.errors import InvalidInput, Issue
from payerbridge.timestamps import date_search_range

__all__ = ["AUDIT_SEARCH_PARAMETERS", "audit_query"]

_MAX_COUNT = 200
_ID = re.compile(r"^[A-Za-z0-9._~:@/+=-]{1,200}$")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_ACTION = re.compile(r"^[a-z][a-z0-9.-]{0,63}$")
AUDIT_SEARCH_PARAMETERS = ("patient", "entity", "agent", "subtype", "date", "_count", "_cursor")


def _entity(name: str, value: str) -> tuple[str, str] | str:
    """(type, id), or what is wrong with ``value``."""
    if name == "patient":
        found = value.removeprefix("Patient/")
        return ("Patient", found) if _ID.match(found) and "/" not in found else "give Patient/<id>"
    kind, _, key = value.partition("/")
    if not _TYPE.match(kind) or not key or not _ID.match(key):
        return "give <Type>/<id>, e.g. Exchange/<id> or Consent/<id>"
    return kind, key


class _Reading:
    """The query as read so far, and the issues found."""

    def __init__(self) -> None:
        self.query = AuditQuery()
        self.issues: list[Issue] = []
        self.seen: dict[str, int] = {}

    def bad(self, name: str, text: str, code: str = "invalid") -> None:
        self.issues.append(Issue(f"{name}: {text}", name, code))

    def set(self, **changes: object) -> None:
        self.query = replace(self.query, **changes)  # type: ignore[arg-type]

    def read(self, name: str, value: str) -> None:
        if name in ("patient", "entity"):
            found = _entity(name, value)
            if isinstance(found, str):
                self.bad(name, found)
            elif self.query.entity is not None:
                self.bad(name, "give patient or entity, not both")
            else:
                self.set(entity=found)
        elif name == "agent":
            self.set(agent=value) if _ID.match(value) else self.bad(name, "give a client id")
        elif name == "subtype":
            code = value.rpartition("|")[2]
            self.set(action=code) if _ACTION.match(code) else self.bad(name, "give an action")
        elif name == "date":
            self._date(value)
        elif not value.isdigit() or not 1 <= int(value) < 2**63:
            self.bad(name, "give a whole number" if name == "_count" else "follow 'next' as given")
        elif name == "_count":
            count = int(value)
            ok = count <= _MAX_COUNT
            self.set(count=count) if ok else self.bad(name, f"at most {_MAX_COUNT}")
        else:
            self.set(before=int(value))

    def _date(self, value: str) -> None:
        try:
            low, high = date_search_range(value)
        except ValueError:
            self.bad("date", "give [eq|ge|gt|le|lt] and a date or an instant with its offset")
            return
        query = self.query
        if low is not None:
            self.set(start=max(low, query.start) if query.start else low)
        if high is not None:
            self.set(end=min(high, query.end) if query.end else high)


def audit_query(params: Iterable[tuple[str, str]]) -> AuditQuery:
    """The query ``params`` ask for; InvalidInput naming each bad parameter."""
    reading = _Reading()
    for name, value in params:
        if name not in AUDIT_SEARCH_PARAMETERS:
            known = ", ".join(AUDIT_SEARCH_PARAMETERS)
            reading.bad(name[:40], f"unknown parameter; known: {known}", "not-supported")
            continue
        reading.seen[name] = reading.seen.get(name, 0) + 1
        if reading.seen[name] > (2 if name == "date" else 1):
            reading.bad(name, "given too many times")
        elif not value:
            reading.bad(name, "empty: give a value or leave the parameter out", "required")
        else:
            reading.read(name, value)
    if reading.issues:
        raise InvalidInput("the AuditEvent search has bad parameters", issues=reading.issues)
    return reading.query
