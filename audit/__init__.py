"""The audit trail: who changed what, when, before and after.

A package of its own, not part of ``sequences/``, because every domain records into
the same trail (sequences today; tenants and API clients next) and the platform
admin reads it across domains. It depends only on ``storage/``, so any domain can
import it without importing another domain.
"""
