"""Where outbound calls may go: the address policy (pure), the origin of a URL (pure) and
the httpx transport that connects only to addresses the policy allows, reading answers
up to a cap."""

from payerbridge.net.addresses import AddressPolicy, address_refusal
from payerbridge.net.origins import origin, same_origin

__all__ = ["AddressPolicy", "address_refusal", "origin", "same_origin"]
