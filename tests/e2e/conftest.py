"""pytest fixtures for the end-to-end tests (see parleytest.py)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parleytest import Server  # noqa: E402


@pytest.fixture
def server():
    """A fresh parleyd on free ports with an empty data directory."""
    with Server() as s:
        yield s


@pytest.fixture(scope="module")
def shared_server():
    """One parleyd for a module of tests that do not disturb each other."""
    with Server() as s:
        yield s
