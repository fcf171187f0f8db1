"""Delivery: what an exchange received, taken on to the plan's own FHIR server.

``bundle`` builds the transaction Bundles (pure); ``model`` holds a delivery's states and
its retry decision; ``service`` runs one attempt on the room's unit of work."""

from payerbridge.delivery.bundle import Transaction, plan_transactions
from payerbridge.delivery.model import DeliveryRecord, DeliveryState

__all__ = ["DeliveryRecord", "DeliveryState", "Transaction", "plan_transactions"]
