"""The rule's clocks: obligations as data, the plan's business calendar, and where each
deadline stands (ADR 0037)."""
