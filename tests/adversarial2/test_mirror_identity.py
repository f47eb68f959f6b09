"""The host's mirror file is named after ``host:port<path>#prefix`` of ``REDIS_URL`` (``worker.bootstrap.
state_mirror``), but redis-py also takes the database from the query (``?db=N``), which wins over the path: two
deployments on different databases of one Redis share a mirror, and a sound deployment is refused as "lost"."""

from __future__ import annotations

from tests.core.harness import Rig, settings_for
from worker.bootstrap import state_mirror
from worker.store.epoch import StateLost


def test_a_deployment_on_another_database_halts_a_sound_one_through_the_shared_mirror(
    redis_url: str, key_prefix: str
) -> None:
    """The state epoch never halts a sound deployment: db 0 and ?db=13 share one mirror; the new one is refused."""
    ours_url = "redis://127.0.0.1:6379?db=13"  # database 13, named by the query
    theirs = settings_for("redis://127.0.0.1:6379/0", key_prefix)  # another deployment on this host, database 0
    ours = settings_for(ours_url, key_prefix)
    assert state_mirror(ours).path != state_mirror(theirs).path, "different databases, different mirrors"
    # the other deployment has been running on this host (its mirror, as its workers keep it; db 0 is not touched)
    state_mirror(theirs).record("0123456789abcdef0123456789abcdef", 4_200, 1_795_000_000_000)
    try:
        rig = Rig(ours_url, key_prefix)  # a new deployment, nothing lost: must start
    except StateLost as lost:
        raise AssertionError(f"a sound deployment was refused because of another database's mirror: {lost}") from None
    rig.close()
