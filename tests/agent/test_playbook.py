"""The business playbook: the shipped example, PLAYBOOK_PATH, validation and reload on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from salesbot.agent.grounding import Ledger
from salesbot.agent.playbook import DEFAULT_PLAYBOOK_PATH, Playbook, PlaybookError, derived, load_playbook
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


def test_terms_are_data_validated_on_load(tmp_path: Path) -> None:
    playbook = load_playbook()
    assert [(plan.months, plan.annual_rate) for plan in playbook.financing.plans] == [
        (3, 0),
        (6, 0),
        (12, 9),
        (24, 9),
        (36, 9),
    ]
    assert playbook.financing.plan(36) is not None
    assert playbook.financing.plan(48) is None

    def refused(section: str, value: object, message: str) -> None:
        data = yaml.safe_load(DEFAULT_PLAYBOOK_PATH.read_text(encoding="utf-8"))
        data[section] = value
        path = tmp_path / f"{section}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        with pytest.raises(PlaybookError, match=message):
            load_playbook(path)

    refused("discount", {"max_pct": 10, "rules": [{"max_pct": 15, "min_units": 10}]}, "above max_pct")
    refused("discount", {"max_pct": 10}, "no rule says when")
    refused("financing", {"plans": [{"months": 6, "annual_rate": 0}, {"months": 6, "annual_rate": 9}]}, "6 months")
    refused("financing", {"plans": [{"months": 12, "annual_rate": 120}]}, "annual_rate")
    # A playbook written for the free-rate tool says what replaced its fields.
    refused("financing", {"default_annual_rate": 9, "max_months": 36}, "replaced by financing.plans")


def test_values_derived_from_a_playbook_are_computed_once_and_never_shared() -> None:
    playbook = load_playbook()
    edited = playbook.model_copy(update={"delivery": "Delivery anywhere in the UAE costs AED 75."})
    calls: list[tuple[Playbook, str]] = []

    def build(source: Playbook, language: str) -> list[str]:
        calls.append((source, language))
        return [source.delivery, language]

    first = derived(playbook, build, "en")
    assert derived(playbook, build, "en") is first
    assert derived(playbook, build, "ar") == [playbook.delivery, "ar"]
    assert derived(edited, build, "en") == [edited.delivery, "en"]
    assert [(source is edited, language) for source, language in calls] == [(False, "en"), (False, "ar"), (True, "en")]


def test_each_playbook_grounds_its_own_policy_figures() -> None:
    playbook = load_playbook()
    edited = playbook.model_copy(update={"delivery": "Delivery anywhere in the UAE costs AED 75."})

    def delivery_fees(source: Playbook) -> set[str]:
        return {item["value"] for item in Ledger.of([], source).items if "delivery" in item.get("topics", [])}

    assert "75" not in delivery_fees(playbook)
    assert delivery_fees(edited) == {"75"}
    assert "75" not in delivery_fees(playbook)
