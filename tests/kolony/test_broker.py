"""The embedded Apache Kafka: starting on ports it picks, and saying why it cannot start."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kolony.broker import EmbeddedKafka, PortTaken, free_port
from kolony.broker import server as broker_server


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A port some other socket holds (bound, as an outgoing connection's port is: not
    listening, so connecting to it fails as it would before the broker listens)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def test_a_picked_port_taken_before_java_binds_it_is_picked_again(
    tmp_path: Path, held: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ports from bind(0) are ephemeral: another process's outgoing connection may take one
    between the pick and the broker's bind. The node then starts on newly picked ports."""
    taken = held.getsockname()[1]
    picks = iter([taken, taken])  # the client port and the controller port, both taken

    def pick(host: str = "127.0.0.1") -> int:
        return next(picks, None) or free_port(host)

    monkeypatch.setattr(broker_server, "free_port", pick)
    node = EmbeddedKafka(tmp_path / "kafka", 0)
    try:
        address = node.start(60)
        assert node.port != taken and address == f"127.0.0.1:{node.port}"
        with socket.create_connection(("127.0.0.1", node.port), 2):
            pass
    finally:
        node.stop()


def test_a_chosen_port_taken_as_the_broker_starts_is_named(
    tmp_path: Path, held: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port the user chose is never moved; losing it in the race is a one-line error."""
    taken = held.getsockname()[1]
    monkeypatch.setattr(broker_server, "port_is_free", lambda *_: True)  # the race: free, then not
    node = EmbeddedKafka(tmp_path / "kafka", taken)
    with pytest.raises(PortTaken, match=f"port {taken} was taken"):
        node.start(60)
    assert not node.running


def test_a_fatal_start_names_its_root_cause(tmp_path: Path, held: socket.socket) -> None:
    """A cluster node's controller port is fixed: not picked again, and the error says why."""
    taken = held.getsockname()[1]
    node = EmbeddedKafka(tmp_path / "kafka", 0, voters={1: taken})
    with pytest.raises(broker_server.BrokerError, match="BindException"):
        node.start(60)
    assert not node.running
