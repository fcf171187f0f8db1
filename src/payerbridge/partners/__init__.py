"""Outbound HTTP to partner payers."""

from payerbridge.partners.client import HttpxPartnerClient

__all__ = ["HttpxPartnerClient"]
