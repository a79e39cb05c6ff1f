"""``make bench``: Tally against a bare FastAPI app on the same stack, driven by wrk."""
