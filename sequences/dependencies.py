"""FastAPI dependencies of the sequences API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from sequences.schemas import NAME_PATTERN
from sequences.service import SequenceService


async def get_sequence_service(request: Request) -> SequenceService:
    service: SequenceService = request.app.state.sequences
    return service


Sequences = Annotated[SequenceService, Depends(get_sequence_service)]
NamePath = Annotated[
    str,
    Path(
        pattern=NAME_PATTERN,
        description="1-64 of a-z 0-9 . _ -, starting with a letter or digit.",
    ),
]
