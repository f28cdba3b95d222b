"""What the pytest plugin's fixtures give, and the contract each model's ready-made fixture
follows (importable without pytest)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._fleet import Config, Fleet, Port

T = TypeVar("T")


@dataclass(frozen=True)
class ModelFixture(Generic[T]):
    """A model's ready-made fixture: its `[[device]]` table in the session fleet (its `name`
    is the port's), and what the fixture gives a test.

    A model adds its own with one `ModelFixture` and `model_fixture()` (pytest_plugin): the
    session fleet serves every registered device, and is reset before each test that asks.
    """

    #: The fixture's name (`pi30_port`).
    fixture: str
    #: The `[[device]]` table, as a dict; a relative `link` lands in the fleet's directory.
    device: Mapping[str, Any]
    #: What the test gets, from the session fleet and this device's port.
    give: Callable[[Fleet, Port], T]

    @property
    def port_name(self) -> str:
        """The port's name in the session fleet."""
        return str(self.device["name"])


#: Every registered model fixture by fixture name (in registration order).
MODEL_FIXTURES: dict[str, ModelFixture[Any]] = {}


def register(model: ModelFixture[T]) -> ModelFixture[T]:
    """Add `model` to the session fleet's devices."""
    if any(m.port_name == model.port_name for m in MODEL_FIXTURES.values() if m is not model):
        raise ValueError(f"two model fixtures name the port {model.port_name!r}")
    MODEL_FIXTURES[model.fixture] = model
    return model


def session_config() -> dict[str, Any]:
    """The session fleet's config: every registered model fixture's device."""
    return {"device": [dict(m.device) for m in MODEL_FIXTURES.values()]}


@dataclass(frozen=True)
class ModbusBus:
    """A Modbus RTU bus: its port, the unit ids that answer, and its line."""

    port: Port
    unit_ids: tuple[int, ...]
    baudrate: int = 19200

    @property
    def path(self) -> str:
        """What a Modbus RTU client opens."""
        return self.port.path


#: A PI30 inverter (mppsolar's `-P PI30`, 2400 baud) at `ttyUSB-inverter`.
PI30 = register(
    ModelFixture(
        fixture="pi30_port",
        device={"name": "inverter", "model": "pi30", "link": "ttyUSB-inverter"},
        give=lambda fleet, port: port,
    )
)

#: A Modbus RTU bus of two units: 1, a meter (input registers 0-1: 230.5 as a float, high word
#: first), and 2, a unit with a writable holding register 0 (7).
MODBUS = register(
    ModelFixture(
        fixture="modbus_bus",
        device={
            "name": "bus",
            "model": "modbus",
            "link": "ttyUSB-modbus",
            "modbus": {
                "unit": [
                    {"id": 1, "input": [{"address": 0, "type": "f32", "value": 230.5}]},
                    {"id": 2, "holding": [{"address": 0, "type": "u16", "value": 7}]},
                ]
            },
        },
        give=lambda fleet, port: ModbusBus(port, (1, 2)),
    )
)

#: The original use case on a port with network endpoints too (raw TCP and RFC 2217):
#: `QPGS` answers `correct result`, anything else `I dont understand` (CRLF lines).
NETWORK = register(
    ModelFixture(
        fixture="network_port",
        device={
            "name": "qpgs",
            "model": "scripted",
            "link": "ttyUSB-qpgs",
            "script": {
                "default": "I dont understand",
                "rule": [{"request": "QPGS", "reply": "correct result"}],
            },
            "network": {"tcp": "127.0.0.1:0", "rfc2217": "127.0.0.1:0"},
        },
        give=lambda fleet, port: port,
    )
)


class FleetFactory:
    """The `serialtwin_fleet` fixture: `serialtwin_fleet(config, **options)` starts a
    `Fleet` (options as `Fleet`'s) that is stopped when the test ends."""

    def __init__(
        self,
        *,
        bin: str | None = None,
        keep: bool = False,
        started: Callable[[Fleet], None] | None = None,
    ) -> None:
        self._bin = bin
        self._keep = keep
        self._started = started
        self.fleets: list[Fleet] = []

    def __call__(self, config: Config, **options: Any) -> Fleet:
        options.setdefault("bin", self._bin)
        options.setdefault("keep", self._keep)
        fleet = Fleet(config, **options).start()
        self.fleets.append(fleet)
        if self._started is not None:
            self._started(fleet)
        return fleet

    def close_all(self) -> None:
        """Stop every fleet it started; the first failure raised after all are stopped."""
        first: BaseException | None = None
        for fleet in reversed(self.fleets):
            try:
                fleet.close()
            except BaseException as e:  # noqa: BLE001 - every fleet is stopped first
                first = first or e
        self.fleets.clear()
        if first is not None:
            raise first
