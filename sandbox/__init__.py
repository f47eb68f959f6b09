"""A faithful, stateful simulator of KuCoin's Exchange Broker (ND Broker) REST API.

In-process: ``httpx.Client(base_url="http://sandbox", transport=Exchange(config, credentials).transport())``.
Over loopback: ``with start_server(Exchange()) as server: ... server.url ...``. See docs/sandbox.md.
"""

from __future__ import annotations

from sandbox.app import Exchange
from sandbox.config import ActivityConfig, FaultConfig, SandboxConfig, SandboxCredentials
from sandbox.server import SandboxServer, serve_forever, start_server
from sandbox.transport import SandboxTransport
from sandbox.wire import Directive, SimOutcome, SimRequest

__all__ = [
    "ActivityConfig",
    "Directive",
    "Exchange",
    "FaultConfig",
    "SandboxConfig",
    "SandboxCredentials",
    "SandboxServer",
    "SandboxTransport",
    "SimOutcome",
    "SimRequest",
    "serve_forever",
    "start_server",
]
