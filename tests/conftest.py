"""Shared fixtures: no network, seeded generators, real sample pairs, data root."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ASSETS = Path(__file__).parent / "assets"


def _is_local(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach a non-loopback address."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return original_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return original_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


# One intra-op thread: the suite is dominated by small tensors, where a second
# thread costs more in synchronisation than it gains, and results stay bitwise
# reproducible whatever the host's core count.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test, restoring the previous count after it.

    Small tensors: one thread is far faster than two on a loaded 2-core machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch generator."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def assets() -> Path:
    """Folder of the small real sample pairs committed with the tests."""
    return ASSETS


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder (labels, reference photographs); skips when absent."""
    from helpers import find_shared_data

    root, missing = find_shared_data()
    if missing:
        pytest.skip(missing)
    return root
