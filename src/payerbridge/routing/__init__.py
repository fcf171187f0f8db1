"""Partners (other payers) and the choice of where an exchange goes."""

from payerbridge.routing.model import Organization, Partner, validate_partner

__all__ = ["Organization", "Partner", "validate_partner"]
