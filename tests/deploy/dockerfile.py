"""A reader of the repository's Dockerfile for the deploy tests: instructions with their continuation lines joined,
grouped by build stage. Only what the tests need: no variable expansion, no heredocs (the Dockerfile uses none)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword in upper case and the rest of the line (continuations joined by a space)."""

    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT/CMD. Raises ``ValueError`` for the shell form."""
        value = json.loads(self.args)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{self.keyword} is not in exec form: {self.args}")
        return value


@dataclass
class Stage:
    """A build stage: its ``FROM`` reference, its name (``AS``) and the instructions after it."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile's text, comments and blank lines dropped, ``\\`` continuations joined."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        result.append(Instruction(keyword.upper(), re.sub(r"\s+", " ", args.strip())))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return result


def stages(text: str) -> list[Stage]:
    """The build stages of a Dockerfile's text, in order; instructions before the first ``FROM`` (ARG) dropped."""
    result: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(base=words[0], name=name))
        elif result:
            result[-1].instructions.append(instruction)
    return result


def copy_sources(stage: Stage) -> list[str]:
    """The build-context paths a stage's ``COPY`` instructions read (``COPY --from=...`` reads another stage)."""
    sources: list[str] = []
    for copy in stage.all("COPY"):
        words = shlex.split(copy.args)
        if any(w.startswith("--from") for w in words):
            continue
        sources.extend(w for w in words[:-1] if not w.startswith("--"))
    return sources
