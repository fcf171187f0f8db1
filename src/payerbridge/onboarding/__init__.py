"""Plan-year onboarding (new payer): a file of new members, matched at one old payer with
``$bulk-member-match``, their histories exported with ``$davinci-data-export`` and
imported under our ids with Provenance, durably and chunk by chunk."""

from payerbridge.onboarding.model import Onboarding, OnboardingStatus
from payerbridge.onboarding.ports import OnboardingPorts
from payerbridge.onboarding.service import accept_onboarding, proceed

__all__ = ["Onboarding", "OnboardingPorts", "OnboardingStatus", "accept_onboarding", "proceed"]
