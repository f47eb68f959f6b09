"""The Dockerfile keeps the supply-chain rules of deploy/README.md ("Container image"): a base pinned by tag and
digest, dependencies only from the hash-checked lockfile, a fixed non-root user, an exec-form entrypoint, no
secret baked in, and a build context that holds only the image's inputs. The image is not built here (no container
daemon in the test environment): these tests read the files."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.specifiers import SpecifierSet

from tests.deploy.dockerfile import DOCKERFILE, DOCKERIGNORE, ROOT, Instruction, copy_sources, instructions, stages

PINNED = re.compile(r"^(?P<name>[a-z0-9./_-]+):(?P<tag>[A-Za-z0-9._-]+)@sha256:[0-9a-f]{64}$")
IMAGE_USER = "10001:10001"
SECRET_NAME = re.compile(r"SECRET|PASSW|PASSPHRASE|TOKEN|CREDENTIAL|PRIVATE|API_KEY|_KEYS?\b|JWK", re.IGNORECASE)


def _text() -> str:
    return DOCKERFILE.read_text()


def _runs() -> list[str]:
    return [i.args for stage in stages(_text()) for i in stage.all("RUN")]


def test_reader_joins_continuations_and_splits_stages() -> None:
    """The reader itself: continuation lines joined, comments inside them dropped, stages named."""
    text = "FROM a:1@sha256:" + "0" * 64 + " AS one\nRUN x \\\n  # note\n  && y\nFROM b:2 AS two\nUSER 1:1\n"
    found = stages(text)
    assert [(s.base, s.name) for s in found] == [("a:1@sha256:" + "0" * 64, "one"), ("b:2", "two")]
    assert found[0].instructions == [Instruction("RUN", "x && y")]
    assert found[1].instructions == [Instruction("USER", "1:1")]


def test_every_stage_starts_from_the_same_base_pinned_by_tag_and_digest() -> None:
    """Each FROM names an image by tag AND sha256 digest (never `latest`), and all stages share one base, so the
    Python that built the venv is the Python that runs it."""
    bases = [stage.base for stage in stages(_text())]
    assert len(bases) >= 2, "a multi-stage build: the build tools stay out of the final image"
    for base in bases:
        match = PINNED.match(base)
        assert match, f"FROM {base} is not pinned by tag and digest"
        assert match["tag"] != "latest"
        assert match["name"] == "python" and match["tag"].startswith("3.11"), "the project requires Python 3.11"
    assert len(set(bases)) == 1


def test_dependencies_come_only_from_the_hash_checked_lockfile() -> None:
    """runtime.lock is installed with --require-hashes --no-deps and wheels only; every other pip install is either
    hash-checked or of the project itself with --no-deps; nothing is fetched by curl, wget or ADD."""
    runs = _runs()
    commands = [c.strip() for run in runs for c in run.split("&&")]
    installs = [c for c in commands if re.search(r"\bpip install\b", c)]
    locked = [c for c in installs if "runtime.lock" in c]
    assert locked, "requirements/runtime.lock is not installed"
    for command in locked:
        assert "--require-hashes" in command and "--no-deps" in command and "--only-binary=:all:" in command
    for command in installs:
        assert "--no-deps" in command, f"pip may resolve something outside a lock: {command}"
        assert "--require-hashes" in command or command.endswith("/build/dist/*.whl"), f"unchecked: {command}"
        assert " -i " not in command and "--index-url" not in command and "--extra-index-url" not in command
    wheels = [c for c in commands if re.search(r"\bpip wheel\b", c)]
    assert wheels and all("--no-deps" in c and "--no-build-isolation" in c for c in wheels)
    assert not re.search(r"\b(curl|wget)\b", " ".join(runs))
    assert not [i for s in stages(_text()) for i in s.all("ADD")], "ADD can fetch URLs and unpack archives: COPY"


def test_build_backend_pin_is_hash_checked_and_satisfies_pyproject() -> None:
    """The setuptools the wheel is built with is pinned by version and hash, within pyproject's [build-system]."""
    pins = re.findall(r"'(setuptools==(\S+) --hash=sha256:[0-9a-f]{64})'", _text())
    assert len(pins) == 1, "one hash-pinned build backend"
    version = pins[0][1]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    assert version in SpecifierSet(setuptools.removeprefix("setuptools"))


def test_final_stage_runs_as_the_fixed_non_root_user() -> None:
    """The last USER of the final stage is numeric uid:gid 10001 (runAsNonRoot needs a number to check), the user
    is created with those ids, and nothing runs after it as root."""
    final = stages(_text())[-1]
    users = final.all("USER")
    assert users and users[-1].args == IMAGE_USER
    uid, gid = IMAGE_USER.split(":")
    assert int(uid) != 0 and int(gid) != 0
    created = " ".join(final_run.args for final_run in final.all("RUN"))
    assert f"--gid {gid}" in created and f"--uid {uid}" in created
    after_user = final.instructions[final.instructions.index(users[-1]) :]
    assert not [i for i in after_user if i.keyword == "RUN"], "RUN after USER: keep the image's last layers root-free"


def test_entrypoint_is_exec_form_without_a_shell_and_cmd_is_a_procfile_process() -> None:
    """ENTRYPOINT ["provisioner"] (signals reach the process, no shell in between) and CMD names a Procfile
    process, so `args: [api]` in a manifest runs the API."""
    final = stages(_text())[-1]
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    assert entrypoint.exec_form() == ["provisioner"]
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line and ": " in line
    )
    assert procfile["worker"] == "provisioner " + " ".join(cmd.exec_form())
    assert "sh" not in entrypoint.exec_form()[0] and "bash" not in entrypoint.exec_form()[0]


def test_no_secret_is_baked_into_the_image() -> None:
    """No ENV, ARG or LABEL names anything secret; settings come from the environment at run time."""
    for stage in stages(_text()):
        for instruction in stage.all("ENV") + stage.all("ARG") + stage.all("LABEL"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)=", instruction.args)
            assert names, instruction
            assert not [n for n in names if SECRET_NAME.search(n)], instruction
    assert not re.search(r"COPY\s+[^\n]*\.env\b", _text())


def test_read_only_root_writes_go_to_tmp() -> None:
    """HOME is /tmp and bytecode is compiled at build time, so a read-only root filesystem holds."""
    final = stages(_text())[-1]
    env = " ".join(i.args for i in final.all("ENV"))
    assert "HOME=/tmp" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert "compileall" in " ".join(_runs())


@pytest.mark.parametrize("excluded", [".git", ".venv", ".venv-tools", "tests", ".mypy_cache", "bench", ".env"])
def test_dockerignore_keeps_everything_but_the_image_inputs_out(excluded: str) -> None:
    """.dockerignore excludes everything first, then lets back in exactly the paths the Dockerfile copies."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*"
    allowed = [p[1:] for p in patterns if p.startswith("!")]
    assert not [a for a in allowed if a == excluded or a.startswith(excluded + "/")]


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    """The allow-list and the COPY sources are the same set, and every package pyproject.toml ships is copied."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    copied = {source for stage in stages(_text()) for source in copy_sources(stage)}
    assert allowed == copied
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert {p.rstrip("*") for p in packages["include"]} <= copied


def test_instructions_are_known_keywords() -> None:
    """Every line is read as an instruction the builder knows (a typo would otherwise pass the other tests)."""
    known = {"FROM", "RUN", "COPY", "ENV", "ARG", "LABEL", "USER", "WORKDIR", "EXPOSE", "ENTRYPOINT", "CMD"}
    assert {i.keyword for i in instructions(_text())} <= known
