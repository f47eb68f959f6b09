"""``provisioner demo`` names the configured Redis it cannot reach without printing the Redis password."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import main
from tests.private_redis import free_port


def test_an_unreachable_redis_is_named_without_its_password() -> None:
    url = f"redis://:demo-redis-password-77@127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(main, ["demo"], env={"REDIS_URL": url}, catch_exceptions=False)
    assert result.exit_code != 0
    output = result.output + result.stderr
    assert "does not answer" in output and "127.0.0.1" in output
    assert "demo-redis-password-77" not in output
