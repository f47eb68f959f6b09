"""Fixtures the security tests borrow from the webhook tests."""

from tests.webhooks.conftest import hooks

__all__ = ["hooks"]
