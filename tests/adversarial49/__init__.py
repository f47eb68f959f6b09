"""Adversarial round 49: rolling deploys and two worker groups with different settings on one Redis and one
exchange (see each test's docstring)."""
