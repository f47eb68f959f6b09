"""3f95e34: ``recover`` sets ``{p}:wh:recording_since`` to 0 after a loss (nothing issued before counts as
delivered unrecorded) only ``if app.settings.webhook_url or recording_since exists``. After a loss the key is gone
with the rest of Redis, and ``provisioner recover`` runs from the on-call's shell, which — like ``customer retry``
in adv41 — has no webhook URL or secret (nothing the CLI does sends a webhook). So in a deployment *with* webhooks
the 0 is not set, and the dispatchers' first pass afterwards stamps ``recording_since`` = now: every key issued
before the loss counts as delivered at that moment — what the 0 was added to prevent."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.redis
