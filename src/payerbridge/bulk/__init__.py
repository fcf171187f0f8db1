"""Bulk payer-to-payer work as durable jobs (ADR 0018): ``$bulk-member-match`` now, the
exports next. A job's row is its checkpoint; its workflow works in chunks, each chunk's
results committed with the job's cursor, so a run cut off anywhere resumes after the last
committed chunk and writes nothing twice."""
