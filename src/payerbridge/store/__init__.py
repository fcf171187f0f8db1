"""Persistence adapters: the SQL stores behind the rooms' ports, the schema and its
migrations, and the files kept beside the database (audit checkpoints, keys).
Only ``bootstrap`` picks these; edges never import them."""

__all__: list[str] = []
