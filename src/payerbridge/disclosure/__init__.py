"""What the old payer discloses to a partner: reads, searches and $everything, each decided
by the member's consent for the caller when the data leaves (bulk export plans each
member's as ``$everything`` does: ``bulk.export``).

Every disclosure path goes through this room, so the consent re-check has one place to sit.
"""

from payerbridge.disclosure.everything import plan_everything
from payerbridge.disclosure.ports import MemberRecords
from payerbridge.disclosure.reads import (
    DisclosureContext,
    authorize_member,
    find_patients,
    read_resource,
)
from payerbridge.disclosure.release import release

__all__ = [
    "DisclosureContext",
    "MemberRecords",
    "authorize_member",
    "find_patients",
    "plan_everything",
    "read_resource",
    "release",
]
