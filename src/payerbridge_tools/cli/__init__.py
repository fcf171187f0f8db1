"""The tools' commands, which the ``payerbridge`` CLI adds from the ``payerbridge.commands``
entry points: ``bench`` (``cli/bench.py``), ``sandbox`` and ``demo`` (``cli/sandbox.py``)."""
