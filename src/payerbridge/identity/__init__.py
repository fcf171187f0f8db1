"""Identity resolution for $member-match (old-payer role).

This first version is the exact matcher of the thin slice: card identifier plus
demographic confirmation. The household-aware probabilistic engine replaces
``model.decide_exact`` behind the same service function.
"""

from payerbridge.identity.model import MatchDecision, MatchOutcome, decide_exact
from payerbridge.identity.service import MemberDirectory, match_member

__all__ = ["MatchDecision", "MatchOutcome", "MemberDirectory", "decide_exact", "match_member"]
