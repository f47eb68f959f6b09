"""``provisioner worker`` starts its metric processes on a clean folder without deleting anything it did not
create in a folder the operator named (PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

from pathlib import Path

from cli.worker_cmd import prepare_metrics_dir


def test_a_named_folder_loses_only_the_metric_files_of_earlier_runs(tmp_path: Path) -> None:
    named = tmp_path / "metrics"
    (named / "keep").mkdir(parents=True)
    for name in ("counter_123.db", "gauge_livesum_77.db", "histogram_9.db", "notes.txt", "counter.db"):
        (named / name).write_text("x")
    prepare_metrics_dir(str(named), named_by_operator=True)
    assert sorted(p.name for p in named.iterdir()) == ["counter.db", "keep", "notes.txt"]


def test_a_missing_named_folder_is_created_and_our_own_folder_is_emptied(tmp_path: Path) -> None:
    named = tmp_path / "new"
    prepare_metrics_dir(str(named), named_by_operator=True)
    assert named.is_dir()
    ours = tmp_path / "provisioner-metrics-9464"
    (ours / "old").mkdir(parents=True)
    (ours / "counter_1.db").write_text("x")
    prepare_metrics_dir(str(ours), named_by_operator=False)
    assert list(ours.iterdir()) == []
