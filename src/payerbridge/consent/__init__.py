"""Consent: the member's opt-in as a runtime decision, and what a ``regular`` consent withholds.

``model`` holds the record, the reasons and the decision; ``policy.evaluate`` is the one
check every hop calls; ``categories`` and ``segmentation`` define and apply the sensitive
data rules. All of it is pure: time comes in as an argument.
"""

from payerbridge.consent.model import (
    POLICY_VERSION,
    ConsentDecision,
    ConsentPolicy,
    ConsentRecord,
    DenyReason,
    Purpose,
    Requester,
    reason_text,
    revoke,
)
from payerbridge.consent.policy import evaluate
from payerbridge.consent.segmentation import (
    SegmentationPolicy,
    SegmentResult,
    segment,
    supported_policies,
)

__all__ = [
    "POLICY_VERSION",
    "ConsentDecision",
    "ConsentPolicy",
    "ConsentRecord",
    "DenyReason",
    "Purpose",
    "Requester",
    "SegmentResult",
    "SegmentationPolicy",
    "evaluate",
    "reason_text",
    "revoke",
    "segment",
    "supported_policies",
]
