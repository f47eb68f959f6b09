"""Reproductions a second adversarial review wrote against the code after the first review's fixes (issue 10):
each broke a guarantee on the code it was written against, and is kept as a regression test once fixed."""
