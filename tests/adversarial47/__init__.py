"""Adversarial round 47: a lying or quirky exchange at the wire (see each test's docstring)."""
