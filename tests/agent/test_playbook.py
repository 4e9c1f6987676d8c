"""The business playbook: the shipped example, PLAYBOOK_PATH, validation and reload on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from salesbot.agent.playbook import DEFAULT_PLAYBOOK_PATH, PlaybookError, load_playbook
from salesbot.models import SalesStage


def test_shipped_example_is_complete() -> None:
    playbook = load_playbook()
    assert playbook.company.name
    assert playbook.assistant.name
    assert playbook.offer
    assert set(playbook.stages) == set(SalesStage)
    for language in ("en", "ar", "ru"):
        assert playbook.messages.handoff.get(language)
        assert playbook.messages.safe_answer.get(language)
    assert 0 <= playbook.discount.max_pct <= 100


def test_playbook_path_overrides_and_changes_are_picked_up(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_PLAYBOOK_PATH.read_text(encoding="utf-8"))
    data["company"]["name"] = "Acme Supplies"
    data["discount"] = {"max_pct": 5, "rules": [{"max_pct": 5, "min_units": 10}]}
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert load_playbook(str(path)).company.name == "Acme Supplies"

    data["discount"] = {"max_pct": 7, "rules": [{"max_pct": 7, "min_units": 10}]}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_playbook(str(path)).discount.max_pct == 7


def test_invalid_playbook_is_reported(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_PLAYBOOK_PATH.read_text(encoding="utf-8"))
    data["discount"]["max_pct"] = 150
    data["timezone"] = "Mars/Olympus_Mons"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PlaybookError, match="max_pct") as raised:
        load_playbook(path)
    assert "unknown time zone" in str(raised.value)

    data = yaml.safe_load(DEFAULT_PLAYBOOK_PATH.read_text(encoding="utf-8"))
    del data["stages"]["quoting"]
    path = tmp_path / "incomplete.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PlaybookError, match="guidance missing for quoting"):
        load_playbook(path)
    with pytest.raises(PlaybookError, match="cannot read"):
        load_playbook(tmp_path / "missing.yaml")
