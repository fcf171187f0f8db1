"""The sandbox's supervisor: one partner stopped, started or dead, the others untouched."""

from __future__ import annotations

from pathlib import Path

import orjson

from payerbridge_tools.cli.sandbox_control import Supervisor, control_dir


class FakeInstance:
    """A process that exits when told to, or by itself."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.code: int | None = None
        self.starts = 1

    def poll(self) -> int | None:
        return self.code

    def pid(self) -> int:
        return 1000 + self.port

    def terminate(self) -> None:
        self.code = -15

    def restart(self) -> None:
        self.code = None
        self.starts += 1


def _states(data_dir: Path) -> dict[str, str]:
    state = orjson.loads((control_dir(data_dir) / "state.json").read_bytes())
    return {name: i["state"] for name, i in state["instances"].items()}


def _ask(data_dir: Path, name: str, action: str) -> None:
    (control_dir(data_dir) / f"{name}.request").write_text(action)


def test_one_partner_stops_and_starts_on_request_the_others_untouched(tmp_path: Path) -> None:
    a, b, c = FakeInstance("payer-a", 1), FakeInstance("payer-b", 2), FakeInstance("platform", 3)
    supervisor = Supervisor([a, b, c], tmp_path, is_healthy=lambda i: True)
    _ask(tmp_path, "payer-b", "stop")
    supervisor.check()
    assert _states(tmp_path) == {"payer-a": "running", "payer-b": "stopped", "platform": "running"}
    assert (a.code, b.code, c.code) == (None, -15, None)
    assert not list(control_dir(tmp_path).glob("*.request"))  # done: the asker may go on
    _ask(tmp_path, "payer-b", "start")
    supervisor.check()
    assert _states(tmp_path)["payer-b"] == "running" and b.starts == 2 and a.starts == 1
    supervisor.close()
    assert not (control_dir(tmp_path) / "state.json").exists()


def test_a_partner_that_dies_is_reported_and_the_others_keep_serving(tmp_path: Path) -> None:
    a, b = FakeInstance("payer-a", 1), FakeInstance("payer-b", 2)
    supervisor = Supervisor([a, b], tmp_path, is_healthy=lambda i: True)
    b.code = 1
    supervisor.check()
    assert _states(tmp_path) == {"payer-a": "running", "payer-b": "exited"}
    _ask(tmp_path, "payer-b", "start")
    _ask(tmp_path, "nobody", "stop")  # unknown: dropped
    supervisor.check()
    assert _states(tmp_path) == {"payer-a": "running", "payer-b": "running"}
    assert not list(control_dir(tmp_path).glob("*.request"))


def test_a_start_that_does_not_answer_leaves_it_exited(tmp_path: Path) -> None:
    a = FakeInstance("payer-a", 1)
    supervisor = Supervisor([a], tmp_path, is_healthy=lambda i: False, start_timeout=0.1)
    a.code = 1
    _ask(tmp_path, "payer-a", "start")
    supervisor.check()
    assert _states(tmp_path) == {"payer-a": "exited"}
