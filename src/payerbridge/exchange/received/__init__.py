"""What an old payer sent, made ours: normalized under our ids, reconciled with what
we hold, and the changes of an incremental answer."""
