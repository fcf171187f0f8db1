"""What every ``payerbridge`` process of the suite computes at start-up and never changes,
computed once in the forkserver (``tests/processes.py``) before any fork, so that each
server, worker and command starts with it: the shipped profile packages read and indexed
(a quarter of a second of CPU) and the TLS context outbound calls verify with. Then what
the forkserver holds is moved out of the cyclic collector's sight, as a server does with
its own heap once built (``payerbridge.collector``): a child's first collection no longer
walks the libraries it was forked with."""

from __future__ import annotations

import gc

from payerbridge.fhir.profiles import ProfileChecker
from payerbridge.net.transport import verified_tls

ProfileChecker.bundled()
verified_tls()
gc.collect()
gc.freeze()
