"""A third adversarial review's reproductions: each test fails on the worker as it stands, for the reason its
docstring gives, and passes on a worker without the fault."""
