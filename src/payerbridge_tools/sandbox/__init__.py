"""Sandbox: a seeded, synthetic payer network (old payers plus the platform) to exchange with."""

from payerbridge_tools.population import (
    Network,
    PayerProfile,
    build_network,
    generate_payer_population,
    sample_switchers,
)
from payerbridge_tools.sandbox.generator import NetworkFiles, PayerFile, write_network

__all__ = [
    "Network",
    "NetworkFiles",
    "PayerFile",
    "PayerProfile",
    "build_network",
    "generate_payer_population",
    "sample_switchers",
    "write_network",
]
