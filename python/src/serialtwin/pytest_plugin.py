"""The serialtwin pytest plugin (entry point `pytest11`): fleets as fixtures.

- `serialtwin_fleet`: a factory; `serialtwin_fleet(config)` starts a fleet stopped after
  the test.
- `pi30_port`, `modbus_bus`, `network_port`: ready-made ports of one session-scoped fleet,
  reset before each test that uses them (`serialtwin_session`); a model adds its own with a
  `ModelFixture` and `model_fixture()`.
- `--serialtwin-bin PATH`: the binary (default: the one installed with this package).
- `--serialtwin-keep`: keep each fleet's directory (config, captures, stderr) and say where.
- A failing test's report shows the recent frames of every port of the fleets it used.

Under pytest-xdist each worker has its own fleets: nothing is shared.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any, TypeVar

import pytest

from ._fleet import Fleet, Port
from .fixtures import (
    MODBUS,
    NETWORK,
    PI30,
    FleetFactory,
    ModbusBus,
    ModelFixture,
    register,
    session_config,
)

T = TypeVar("T")

_FLEETS = pytest.StashKey[list[Fleet]]()
_KEPT = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("serialtwin", "serialtwin emulated serial devices")
    group.addoption(
        "--serialtwin-bin",
        metavar="PATH",
        default=None,
        help="the serialtwin binary (default: the one installed with the package)",
    )
    group.addoption(
        "--serialtwin-keep",
        action="store_true",
        default=False,
        help="keep each fleet's directory (config, captures, stderr) and list them at the end",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEPT] = []


def _bin(config: pytest.Config) -> str | None:
    value = config.getoption("--serialtwin-bin")
    return str(value) if value else None


def _keep(config: pytest.Config) -> bool:
    return bool(config.getoption("--serialtwin-keep"))


def _used_by(node: pytest.Item, fleet: Fleet) -> None:
    used = node.stash.setdefault(_FLEETS, [])
    if fleet not in used:
        used.append(fleet)
    if fleet.keep:
        kept = node.config.stash[_KEPT]
        if fleet.directory not in kept:
            kept.append(fleet.directory)


@pytest.fixture
def serialtwin_fleet(request: pytest.FixtureRequest) -> Iterator[FleetFactory]:
    """Start fleets for this test: `serialtwin_fleet(config, **options)`."""
    node = request.node
    assert isinstance(node, pytest.Item)
    factory = FleetFactory(
        bin=_bin(request.config),
        keep=_keep(request.config),
        started=lambda fleet: _used_by(node, fleet),
    )
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture(scope="session")
def serialtwin_session_fleet(pytestconfig: pytest.Config) -> Iterator[Fleet]:
    """One fleet for the session serving every registered model fixture's device."""
    fleet = Fleet(session_config(), bin=_bin(pytestconfig), keep=_keep(pytestconfig)).start()
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
def serialtwin_session(serialtwin_session_fleet: Fleet, request: pytest.FixtureRequest) -> Fleet:
    """The session fleet, reset for this test (`Fleet.reset`)."""
    serialtwin_session_fleet.reset()
    assert isinstance(request.node, pytest.Item)
    _used_by(request.node, serialtwin_session_fleet)
    return serialtwin_session_fleet


def model_fixture(model: ModelFixture[T]) -> Any:
    """A pytest fixture called `model.fixture` giving `model.give(session fleet, its port)`;
    `model` joins the session fleet's devices. Assign it to a module attribute of a plugin or
    conftest (the name is the fixture's, whatever the attribute)."""
    register(model)

    @pytest.fixture(name=model.fixture)
    def fixture(serialtwin_session: Fleet) -> T:
        return model.give(serialtwin_session, serialtwin_session.port(model.port_name))

    fixture.__doc__ = f"Port {model.port_name!r} of the session fleet, reset for this test."
    return fixture


pi30_port = model_fixture(PI30)
modbus_bus = model_fixture(MODBUS)
network_port = model_fixture(NETWORK)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        for fleet in item.stash.get(_FLEETS, []):
            if not fleet.alive():
                continue
            for name, text in fleet.recent():
                report.sections.append((f"serialtwin port {name}: recent frames", text))
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    kept = config.stash.get(_KEPT, [])
    if kept:
        terminalreporter.write_sep("-", "serialtwin: fleet directories kept")
        for d in kept:
            terminalreporter.write_line(d)


__all__ = [
    "FleetFactory",
    "ModbusBus",
    "ModelFixture",
    "Port",
    "model_fixture",
    "modbus_bus",
    "network_port",
    "pi30_port",
    "serialtwin_fleet",
    "serialtwin_session",
    "serialtwin_session_fleet",
]
