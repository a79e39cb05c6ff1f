"""What the platform runs around a release: ``tally migrate`` and ``tally smoke``."""
