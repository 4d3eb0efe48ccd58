"""Webhook delivery: the dispatcher (leases, order, retries) and the signed HTTP sender."""
