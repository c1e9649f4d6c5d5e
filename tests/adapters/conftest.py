"""Fixtures of the adapter tests: the simulator server and HTTP session of tests/simulators."""

from tests.simulators.conftest import session, simulator

__all__ = ["session", "simulator"]
