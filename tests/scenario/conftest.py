"""Fixtures shared by the scenario tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.scenario.capture_helpers import Tcpdump


@pytest.fixture
def captures() -> Iterator[list[Tcpdump]]:
    """pvs-tcpdump processes a test starts; any left running are killed afterwards."""
    started: list[Tcpdump] = []
    yield started
    for capture in started:
        capture.kill()
