"""Reproductions an adversarial review of the money and key guarantees wrote against real Redis and the
simulator (issue 10): each broke a guarantee on the code it was written against, and is kept as a regression
test once fixed."""
