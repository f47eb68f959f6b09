"""Adversarial review, round 18: keys, webhooks and the signed API."""
