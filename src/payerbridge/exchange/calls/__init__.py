"""The exchange's calls to partners: one call within its deadline and the endpoint's
breaker (``outbound``), the breaker and its probe, the retry decisions, and what a call
records."""
