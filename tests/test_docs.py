"""The docs agree with the code and with each other: every setting is documented (README table, env examples),
no file points outside the repository, links resolve, the glossary defines each invented term once."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from worker.profiles import API_WITHHELD, DEV_DEFAULT_API_SETTINGS, DEV_DEFAULT_SECRETS
from worker.settings import Settings

ROOT = Path(__file__).parents[1]


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


API_ONLY = frozenset(
    {
        "PROVISIONER_API_HOST",
        "PROVISIONER_API_PORT",
        "PROVISIONER_API_SECRETS",
        "PROVISIONER_API_METRICS_HOST",
        "PROVISIONER_API_METRICS_PORT",
    }
)
"""Settings only ``provisioner api`` reads; the worker's example leaves them to the API's."""


def _example_names(path: Path) -> set[str]:
    """Variables an env example sets or shows commented out (``NAME=value`` or ``# NAME=value``)."""
    return set(re.findall(r"^#?[ \t]*([A-Z][A-Z0-9_]+)=", path.read_text(), re.MULTILINE))


def test_worker_env_example_lists_every_setting_the_worker_reads() -> None:
    """deploy/systemd/env.example names every worker setting (set or commented with its default), and no other."""
    names = {field.alias for field in Settings.model_fields.values()}
    listed = _example_names(ROOT / "deploy" / "systemd" / "env.example")
    assert (names - API_ONLY) - listed == set(), "settings missing from deploy/systemd/env.example"
    assert listed - names == set(), "env.example names variables the code does not read"


def test_worker_env_example_sets_what_a_production_worker_requires() -> None:
    """env.example (PROVISIONER_ENV=production) sets, not merely shows commented out, every setting a production
    worker refuses to start without: its secrets, the upstream's key, Redis and the personal-data retention period
    (with a placeholder to fill in: the broker's legal retention obligation)."""
    text = (ROOT / "deploy" / "systemd" / "env.example").read_text()
    set_lines = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    required = {
        *DEV_DEFAULT_SECRETS,
        "REDIS_URL",
        "PROVISIONER_DELIVERY_JWK",
        "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS",
    }
    assert set_lines["PROVISIONER_ENV"] == "production"
    assert required - set(set_lines) == set(), "env.example leaves a setting production requires unset"


def test_api_env_example_lists_the_api_settings_and_nothing_it_withholds() -> None:
    """deploy/systemd/api.env.example names what the API requires and its own settings, and no withheld secret."""
    names = {field.alias for field in Settings.model_fields.values()}
    listed = _example_names(ROOT / "deploy" / "systemd" / "api.env.example")
    required = API_ONLY | set(DEV_DEFAULT_API_SETTINGS) | {"REDIS_URL", "PROVISIONER_ENV"}
    assert required - listed == set(), "API settings missing from deploy/systemd/api.env.example"
    assert listed - names == set(), "api.env.example names variables the code does not read"
    assert listed & set(API_WITHHELD) == set(), "api.env.example hands the API a secret it must not hold"


_OUTSIDE = re.compile(
    r"\.\./share[d]|/work/share[d]|STYLE[.]md|facts[ ]file|dramatiq[ -]note[s]|product[ -]contex[t]"
    r"|kucoin-nd-broker[.]md",
    re.IGNORECASE,
)
"""Mentions of documents outside the repository: the team's shared folder, its style guide, its facts and notes
files (the pattern is spelled so that this file does not match it)."""


def test_no_tracked_file_points_outside_the_repository() -> None:
    """Docs, comments and tests cite files inside the repo (docs/kucoin-api.md, docs/architecture.md), never
    a sibling directory, a style guide or notes the repo does not contain."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    offenders = []
    for name in filter(None, files):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if _OUTSIDE.search(line)]
    assert offenders == []


def test_every_relative_link_in_the_docs_resolves() -> None:
    """Each ``[text](path)`` link in a tracked Markdown file that is not a URL names a file or folder that exists."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "*.md"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    broken = []
    for name in filter(None, files):
        for target in re.findall(r"\]\(([^)\s]+)\)", (ROOT / name).read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not ((ROOT / name).parent / target.split("#", 1)[0]).exists():
                broken.append(f"{name} -> {target}")
    assert broken == []


GLOSSARY_TERMS = ("intent", "outcome", "settle", "hand-off", "due", "backstop", "admission", "block", "sweep")


def test_the_glossary_defines_each_invented_term_once() -> None:
    """docs/glossary.md has exactly one entry (a ``### term`` heading) for each word the team invented."""
    headings = re.findall(r"^### (.+)$", (ROOT / "docs" / "glossary.md").read_text(), re.MULTILINE)
    entries = [h.split(" (", 1)[0].strip().lower() for h in headings]
    for term in GLOSSARY_TERMS:
        assert entries.count(term) == 1, f"docs/glossary.md: {term!r} defined {entries.count(term)} times"


def test_worker_env_example_shows_each_optional_setting_at_its_default() -> None:
    """A commented-out ``# NAME=value`` line of env.example holds the code's default, where the code has one."""
    text = (ROOT / "deploy" / "systemd" / "env.example").read_text()
    fields = {field.alias: (name, field) for name, field in Settings.model_fields.items()}
    unset = Settings.model_validate({})  # a default may be derived (the funding caps: of the configured currencies)
    wrong = []
    for alias, value in re.findall(r"^#[ \t]*([A-Z][A-Z0-9_]+)=(\S+)", text, re.MULTILINE):
        name, _field = fields[alias]
        default = getattr(unset, name)
        if default is None:
            continue  # no default to show: the line is a placeholder
        if getattr(Settings.model_validate({alias: value}), name) != default:
            wrong.append(f"{alias}={value} (default {default!r})")
    assert wrong == []
