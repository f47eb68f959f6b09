"""`./dev` installs into .venv only files checked against a sha256 of a committed lockfile: the dependencies from
requirements/dev.lock, the build backend from requirements/build.lock (pyproject.toml's [build-system]), and the
project itself built by that backend without build isolation (isolation would have pip fetch a setuptools of its
own choosing, unchecked). These tests read the script and the lockfiles; `./dev lock --check` keeps the lockfiles
in step with pyproject.toml."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement

from tests.deploy.dockerfile import ROOT

DEV = ROOT / "dev"
BUILD_LOCK = ROOT / "requirements" / "build.lock"


def _function(name: str) -> str:
    """The body of the shell function ``name`` in ./dev, continuation lines joined."""
    text = DEV.read_text()
    start = text.index(f"\n{name}() {{")
    body = text[start : text.index("\n}\n", start)]
    return re.sub(r"\\\n\s*", " ", body)


def _pip_installs(body: str) -> list[str]:
    return [line.strip() for line in body.splitlines() if re.search(r"-m pip install\b", line)]


def _locked(path: str) -> dict[str, tuple[str, set[str]]]:
    """A uv lockfile as name → (version, hashes)."""
    text = re.sub(r"\s*\\\n\s*", " ", (ROOT / path).read_text())
    pins: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        found = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)((?: --hash=sha256:[0-9a-f]{64})+)", line)
        if found:
            pins[found[1].lower()] = (found[2], set(re.findall(r"sha256:([0-9a-f]{64})", found[3])))
    return pins


def test_the_venv_gets_only_hash_checked_files_and_builds_the_project_without_isolation() -> None:
    """Every install of ensure_venv is a lockfile in hash-checking mode without dependency resolution, or the
    project itself, --no-deps and --no-build-isolation, after the locked build backend is in place."""
    installs = _pip_installs(_function("ensure_venv"))
    project = [c for c in installs if c.endswith(" -e .") or c.endswith(" .")]
    locked = [c for c in installs if c not in project]
    assert len(project) == 1, installs
    assert "--no-deps" in project[0] and "--no-build-isolation" in project[0], "pip would fetch an unchecked backend"
    for command in locked:
        assert "--require-hashes" in command and "--no-deps" in command, f"unchecked: {command}"
        assert " -i " not in command and "--index-url" not in command and "--extra-index-url" not in command
    files = [f for c in locked for f in re.findall(r"-r (requirements/\S+\.lock)", c)]
    assert files == ["requirements/dev.lock", "requirements/build.lock"]
    backend = next(c for c in locked if "build.lock" in c)
    assert "--only-binary=:all:" in backend, "the backend is a wheel: no setup.py runs to install it"
    assert installs.index(backend) < installs.index(project[0])
    assert "requirements/build.lock" in _function("ensure_venv"), "a new build.lock must reinstall (the stamp)"


def test_the_build_lock_pins_pyprojects_build_backend_by_hash() -> None:
    """requirements/build.lock holds exactly [build-system] requires, each at a version the range allows, with
    hashes; it is written and checked by `./dev lock` like the other lockfiles, and scanned by `./dev audit`."""
    requires = [
        Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    ]
    pins = _locked("requirements/build.lock")
    assert set(pins) == {r.name.lower() for r in requires}
    for requirement in requires:
        version, hashes = pins[requirement.name.lower()]
        assert version in requirement.specifier and hashes
    assert "build.lock" in _function("lock") and re.search(r"LOCKS=\(.*\bbuild\b.*\)", DEV.read_text())
    assert re.search(r"audit\.py \S+ requirements/build\.lock", DEV.read_text()), "./dev audit scans it too"


def test_the_image_builds_with_the_locked_backend() -> None:
    """The Dockerfile's inline setuptools pin is the one build.lock holds (same version, one of its hashes): the
    image and a development checkout build the project with the same backend."""
    (pin,) = re.findall(r"'setuptools==(\S+) --hash=sha256:([0-9a-f]{64})'", (ROOT / "Dockerfile").read_text())
    version, hashes = _locked("requirements/build.lock")["setuptools"]
    assert pin[0] == version and pin[1] in hashes


def test_the_tools_venv_gets_only_hash_checked_files_of_the_pinned_tools() -> None:
    """uv (which writes the lockfiles) and pip-audit (the advisory scan) come from requirements/tools.lock in
    hash-checking mode, like everything else ./dev installs: the lock holds the versions ./dev pins and all they
    need, each with hashes; `./dev lock` writes and checks it, `./dev audit` scans it."""
    installs = _pip_installs(_function("ensure_tools"))
    assert installs, "ensure_tools installs nothing?"
    for command in installs:
        assert "--require-hashes" in command and "--no-deps" in command, f"unchecked: {command}"
        assert re.findall(r"-r (requirements/\S+\.lock)", command) == ["requirements/tools.lock"], command
    assert "requirements/tools.lock" in _function("ensure_tools"), "a new tools.lock must reinstall (the stamp)"
    text = DEV.read_text()
    wanted = {
        "uv": re.search(r"^UV_VERSION=(\S+)", text, re.M),
        "pip-audit": re.search(r"^PIP_AUDIT_VERSION=(\S+)", text, re.M),
    }
    pins = _locked("requirements/tools.lock")
    for name, version in wanted.items():
        assert version is not None and pins[name][0] == version[1] and pins[name][1], (name, pins.get(name))
    assert len(pins) > 2, "the tools' own dependencies are locked too (installed --no-deps)"
    assert "tools.lock" in _function("lock") and re.search(r"LOCKS=\(.*\btools\b.*\)", text)
    assert re.search(r"audit\.py \S+ requirements/tools\.lock", text), "./dev audit scans it too"
