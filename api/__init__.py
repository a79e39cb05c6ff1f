"""HTTP wiring: the app factory, settings, problem+json handlers and the CLI root."""
