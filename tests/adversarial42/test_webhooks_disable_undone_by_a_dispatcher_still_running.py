"""3f95e34: ``provisioner webhooks disable`` deletes ``{p}:wh:recording_since``; every dispatcher pass runs ``SET
{p}:wh:recording_since <now> NX`` (the admit script). A dispatcher still running when the operator disables — one
pod of a rolling deploy still on the old configuration, a worker host whose URL was not removed yet — re-creates
the key on its next pass, a fraction of a second later. From then on every process, none of which delivers
webhooks any more, waits for deliveries that nobody will ever make."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.redis

GRACE_S = 60
