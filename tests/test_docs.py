"""The README's settings table lists every setting the code reads, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from worker.settings import Settings


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    names = {field.alias for field in Settings.model_fields.values()}
    assert names - documented == set(), "settings missing from the README table"
    assert {n for n in documented - names if n.startswith(("KUCOIN_", "PROVISIONER_", "REDIS_"))} == set()


def test_procfile_runs_the_worker_and_the_api_in_the_foreground() -> None:
    procfile = (Path(__file__).parents[1] / "Procfile").read_text()
    assert "worker: provisioner worker" in procfile
    assert "api: provisioner api" in procfile
