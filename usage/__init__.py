"""Usage over time: how many ``next`` calls and numbers each sequence served, per hour."""
