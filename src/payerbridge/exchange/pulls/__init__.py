"""Standing pulls (ADR 0040): their cadence (``model``) and their schedules run."""
