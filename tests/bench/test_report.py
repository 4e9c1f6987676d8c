"""bench/report.py: the README's Performance table is rendered from the results files, tolerating missing ones."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module
    spec.loader.exec_module(module)
    return module


report = load_report()

# A run from a few days ago: the row carries the day it was measured.
MEASURED = datetime.now(UTC) - timedelta(days=3)
WEBHOOK = {
    "date": MEASURED.isoformat(timespec="seconds"),
    "load": {"requests": 1000, "concurrency": 8, "rounds": 3},
    "results": [
        {"name": "bare", "requests_per_second": 8000.0, "p50_ms": 1.2, "p99_ms": 3.0},
        {"name": "full", "requests_per_second": 400.0, "p50_ms": 30.4, "p99_ms": 1200.0},
    ],
}


def test_rows_come_from_the_files_that_exist_and_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "webhook.json").write_text(json.dumps(WEBHOOK))
    (tmp_path / "turn.json").write_text("{not json")

    rendered = report.table(tmp_path)

    header, _rule, *rows = rendered.splitlines()
    assert header == "| benchmark | command | result |"
    assert rows == [
        "| webhook ingest, full inbox path vs bare FastAPI (1000 requests, 8 connections, median of 3 rounds) "
        "| `.venv/bin/python bench/bench_webhook.py --requests 1000 --concurrency 8` "
        "| inbox 400 req/s, p50 30 ms, p99 1.2 s; bare 8000 req/s, p50 1.2 ms (ratio 0.050) "
        f"({MEASURED.date().isoformat()}) |"
    ]
    errors = capsys.readouterr().err
    assert "turn.json unreadable" in errors
    assert "load.json missing" in errors


def test_the_table_between_the_markers_is_replaced_and_nothing_else(tmp_path: Path) -> None:
    document = f"# Title\n\nBefore.\n\n{report.START}\n| old | table |\n{report.END}\n\nAfter.\n"

    updated = report.replace_table(document, "| new | table |")

    assert updated == f"# Title\n\nBefore.\n\n{report.START}\n| new | table |\n{report.END}\n\nAfter.\n"
    assert report.replace_table(updated, "| new | table |") == updated
    with pytest.raises(ValueError, match="markers"):
        report.replace_table("# no markers\n", "| t |")


def test_the_readme_table_is_the_one_the_results_render() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(report.START) + len(report.START)
    assert readme[start : readme.index(report.END)].strip() == report.table().strip(), "run `make bench-report`"
