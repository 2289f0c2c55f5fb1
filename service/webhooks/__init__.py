"""Webhooks: subscriptions, the outbox fan-out, Standard Webhooks signing, and the delivery worker."""
