"""What the old payer discloses to a partner: $everything now; searches and bulk export later.

Every disclosure path goes through this room, so the consent re-check of the consent
issue has one place to sit.
"""

from payerbridge.disclosure.service import MemberRecords, member_everything

__all__ = ["MemberRecords", "member_everything"]
