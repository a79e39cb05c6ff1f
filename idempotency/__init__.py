"""``Idempotency-Key`` on every write: a retried request never takes a second number."""
