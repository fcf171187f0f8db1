"""Durable workflows on DBOS Transact: orchestration only, every side effect a step."""
