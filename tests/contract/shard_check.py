"""A MongoDB database double that refuses any operation a sharded cluster could not target.

The tenant-scoped collections are sharded on ``{tenant: 1, _id: 1}`` (see docs/storage.md),
so every document must carry ``tenant`` and every filter must name it (an upsert or a
``findAndModify`` without the full shard key is refused by a sharded cluster). The
``tenants`` registry is small and platform-wide; it stays unsharded.
"""

from __future__ import annotations

from typing import Any

UNSHARDED = {"tenants"}
# Platform-wide by design: the idempotency sweep is a multi-delete, which a sharded
# cluster broadcasts to every shard (only single-document writes must be targeted).
BROADCAST = {("idempotency", "delete_many")}
_FILTERED = {
    "find",
    "find_one",
    "find_one_and_update",
    "find_one_and_delete",
    "find_one_and_replace",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "count_documents",
    "distinct",
}


class ShardKeyViolation(AssertionError):
    pass


class CheckedCollection:
    def __init__(self, name: str, inner: Any) -> None:
        self._name, self._inner = name, inner

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        value = getattr(self._inner, attr)
        if attr in _FILTERED:
            return self._checked_filter(attr, value)
        if attr in {"insert_one", "insert_many"}:
            return self._checked_documents(attr, value)
        return value

    def _checked_filter(self, attr: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            query = args[0] if args else kwargs.get("filter", {})
            if attr == "distinct":
                query = args[1] if len(args) > 1 else kwargs.get("filter", {})
            if "tenant" not in (query or {}) and (self._name, attr) not in BROADCAST:
                raise ShardKeyViolation(f"{self._name}.{attr} without the shard key: {query}")
            return method(*args, **kwargs)

        return call

    def _checked_documents(self, attr: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            docs = args[0] if attr == "insert_many" else [args[0]]
            for doc in docs:
                if "tenant" not in doc:
                    raise ShardKeyViolation(f"{self._name}.{attr} of a document without tenant")
            return method(*args, **kwargs)

        return call


class ShardCheckedDatabase:
    """Wraps a (mongomock) database; collections come back checked."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getitem__(self, name: str) -> Any:
        collection = self._inner[name]
        return collection if name in UNSHARDED else CheckedCollection(name, collection)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._inner, attr)
