"""Signed webhooks: every outbound event POSTed to the upstream, at least once, in order per customer.

``signing`` (Standard Webhooks headers), ``sender`` (one request, errors classified), ``store`` (lanes, leases,
dead letters in Redis), ``dispatcher`` (the thread), ``runtime`` (built from settings, started in each worker).
The decisions are pure: ``handlers.delivery``.
"""
