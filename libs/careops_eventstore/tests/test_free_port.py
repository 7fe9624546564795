"""free_port never hands out the same port twice in one process."""

from __future__ import annotations

from careops_eventstore.nats_embedded import free_port


def test_free_port_never_repeats_a_port_it_handed_out() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
