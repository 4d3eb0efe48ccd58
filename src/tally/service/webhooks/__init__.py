"""Webhook subscriptions: management and signing secrets."""
