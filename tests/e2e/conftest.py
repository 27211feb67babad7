"""pytest fixtures for the end-to-end tests (see parleytest.py)."""
import os
import sys
import time

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


@pytest.fixture(scope="session", autouse=True)
def rocksdb_logs_swept():
    """parleyd keeps RocksDB's info LOG in /dev/shm and removes it on a clean
    close only (docs/operations.md), so every test server killed with -9 or
    refused at start would leave one there.  The test servers' data
    directories are temporary (/tmp/parley-*), which RocksDB names in the
    file (tmp_parley-..._LOG); at the end of the session those written
    during it are removed."""
    start = time.time()
    yield
    shm = "/dev/shm"
    try:
        names = os.listdir(shm)
    except OSError:
        return
    for name in names:
        if not name.startswith("tmp_parley-") or "_LOG" not in name:
            continue
        path = os.path.join(shm, name)
        try:
            if os.path.getmtime(path) >= start - 1:
                os.unlink(path)
        except OSError:
            pass
