"""What ``bootstrap`` builds the platform from: each module wires one concern.

- ``platform``: the ``Platform`` the edges are handed, the clock and the ids;
- ``stores``: the database and the stores more than one room is wired to;
- ``partners``: our outbound partner client, UDAP identity and discovery reader;
- ``ports``: the ports each room's use cases are handed, the token service among them;
- ``audit``: the audit chain's signed checkpoints and their verification;
- ``workflows``: DBOS launched and shut down, the scheduled upkeep's use cases.

Only ``bootstrap`` imports this package; the edges import ``bootstrap``."""
