"""Benchmarks: each measures one path and writes a Markdown report under docs/benchmarks/."""
