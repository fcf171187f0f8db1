"""The matching engine: Fellegi-Sunter record linkage for $member-match (ADR 0006).

The declarative part (``spec``: the comparisons and their levels; ``blocking``: the keys a
request finds candidates under; ``rules``: the deterministic rules and the guards) apart
from what runs it (``comparison`` and ``similarity``: the level functions; ``scoring``:
match weights from m and u; ``decision``: match, review, nomatch or multiple under a
policy), and training on the payer's own members (``population``, ``training``: u, term
frequencies, EM for m). Pure: what it reads and keeps goes through ``identity.ports``.
"""

from payerbridge.identity.matching.blocking import blocking_keys
from payerbridge.identity.matching.decision import BULK, SINGLE_EXCHANGE, MatchPolicy, decide
from payerbridge.identity.matching.scoring import MatchModel

__all__ = ["BULK", "SINGLE_EXCHANGE", "MatchModel", "MatchPolicy", "blocking_keys", "decide"]
