"""Webhooks: clients told of their exchanges' state changes, signed and retried.

``model`` is pure (the event, the signature, the backoff); ``delivery`` posts what the
store's outbox holds.
"""

from payerbridge.webhooks.model import Delivery, Subscription, WebhookPolicy, sign, verify

__all__ = ["Delivery", "Subscription", "WebhookPolicy", "sign", "verify"]
