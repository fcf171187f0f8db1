"""The collector settings a server or worker process takes once it is built (run in a
process of its own: they are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

from payerbridge.collector import THRESHOLDS

_PROBE = """
import gc, json
from payerbridge.collector import settle_for_serving
held = [[n] for n in range(1000)]  # what a process holds after start-up
frozen_before = gc.get_freeze_count()
settle_for_serving()
print(json.dumps({"thresholds": gc.get_threshold(), "frozen_before": frozen_before,
                  "frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}))
"""


def test_settling_freezes_what_the_process_holds_and_raises_the_thresholds() -> None:
    run = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert tuple(seen["thresholds"]) == THRESHOLDS
    assert seen["frozen_before"] == 0 and seen["frozen"] >= 1000
    assert seen["enabled"]  # collections still run, less often
