"""The host's mirror of the state epoch: what any process of the host saw is remembered, at once and durably."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from worker.store.epoch import Mirror


def test_the_highest_write_any_process_noted_is_read(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path, "redis:6379/1#p")
    mirror.record("e1", 10, 1_000)
    mirror.note("e1", 25, 2_000)
    other = Mirror(tmp_path, "redis:6379/1#p")  # another process of the host
    assert other.read() == mirror.read()
    entry = other.read()
    assert entry is not None and (entry.epoch, entry.writes) == ("e1", 25)


def test_a_newer_epoch_wins_over_what_was_noted_of_an_older_one(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path, "x")
    mirror.note("old", 500, 1_000)
    mirror.record("new", 3, 2_000, replace=True)
    entry = mirror.read()
    assert entry is not None and (entry.epoch, entry.writes) == ("new", 3)


def test_files_of_processes_that_are_gone_are_merged_then_removed(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from worker.store.epoch import Mirror; "
        "Mirror(Path(sys.argv[1]), 'x').note('e1', 77, 5_000)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=Path(__file__).parents[2])
    assert len(list(tmp_path.glob("*.proc"))) == 1
    mirror = Mirror(tmp_path, "x")
    mirror.record("e1", 10, 6_000)
    assert list(tmp_path.glob("*.proc")) == [], "the dead process's file is folded into the main one"
    entry = mirror.read()
    assert entry is not None and entry.writes == 77


def test_the_file_of_a_running_process_stays(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path, "x")
    mirror.note("e1", 5, 1_000)
    mirror.record("e1", 5, 2_000)
    assert [p.name for p in tmp_path.glob("*.proc")] == [p.name for p in tmp_path.glob(f"*.{os.getpid()}.proc")]
