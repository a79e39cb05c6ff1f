"""core.limits.BodyDeadline: a body read past its deadline raises RequestTimeout."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import RequestTimeout
from core.limits import BodyDeadline


async def _never() -> dict[str, object]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _at_once() -> dict[str, object]:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def test_a_read_past_its_deadline_raises_request_timeout() -> None:
    deadline = BodyDeadline(0.2)
    sweeper = asyncio.create_task(deadline.sweep())

    async def handler() -> tuple[int, dict[str, object]]:
        with pytest.raises(RequestTimeout):
            await deadline.receive(_never, deadline.start())
        # The task is not left cancelled: it goes on to answer 408, and can read again.
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling(), await deadline.receive(_at_once, deadline.start())

    try:
        cancelling, message = await asyncio.wait_for(handler(), 5)
        assert cancelling == 0 and message["body"] == b"{}"
    finally:
        await deadline.stop(sweeper)


async def test_a_cancellation_from_elsewhere_is_not_swallowed() -> None:
    deadline = BodyDeadline(60)
    task = asyncio.create_task(deadline.receive(_never, deadline.start()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
