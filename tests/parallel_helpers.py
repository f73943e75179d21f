"""A fixture that keeps every parallel map of a test in its threads, whatever it measures,
for the tests of what threads must not change (order, random draws, errors, resume,
clean-up). Whether threads pay off is tested on its own in tests/test_data_overlap.py."""

from __future__ import annotations

import functools

import pytest

from trainctl.data.overlap import ParallelProbe
from trainctl.data.parallel import Map


@pytest.fixture
def map_in_threads(monkeypatch):
    """Parallel maps start their threads after 3 serial elements and keep them."""
    always = functools.partial(ParallelProbe, serial_window=0.0, min_cost=0.0, min_speedup=0.0)
    monkeypatch.setattr(Map, "probe_type", always)
