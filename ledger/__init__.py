"""Ledger sequences: reservations (reserve, commit, void, expire), the number ledger and
the auditor's gap report."""
