"""A stand-in for MongoDB's user commands, which mongomock does not implement.

It keeps MongoDB's semantics that ``tally migrate`` relies on: ``createUser`` on an
existing name fails with code 51003, ``updateUser`` replaces the password and every
role, ``usersInfo`` answers ``{"users": [...]}``; each call yields to the event loop,
so concurrent runs interleave as two processes would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.errors import OperationFailure


class FakeUsersDatabase:
    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    async def command(self, command: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        name = next(iter(command))
        self.calls.append(name)
        if name == "createUser":
            user = command["createUser"]
            if user in self.users:
                raise OperationFailure(f'User "{user}@admin" already exists', code=51003)
            self.users[user] = {"pwd": command["pwd"], "roles": list(command["roles"])}
        elif name == "updateUser":
            user = command["updateUser"]
            if user not in self.users:
                raise OperationFailure(f'Could not find user "{user}"', code=11)
            self.users[user] = {"pwd": command["pwd"], "roles": list(command["roles"])}
        elif name == "usersInfo":
            user = command["usersInfo"]
            found = self.users.get(user)
            return {
                "users": [{"user": user, "db": "admin", "roles": found["roles"]}] if found else [],
                "ok": 1,
            }
        else:
            raise OperationFailure(f"no such command: {name}", code=59)
        return {"ok": 1}
