"""Partners (other payers) and the choice of where an exchange goes."""

from payerbridge.routing.model import Partner, validate_partner

__all__ = ["Partner", "validate_partner"]
