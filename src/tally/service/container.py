"""What the handlers need, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tally.config import Settings
from tally.service.pipeline import PostingPipeline
from tally.service.queries import Queries
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class Services:
    settings: Settings
    uow: UnitOfWork
    pipeline: PostingPipeline
    queries: Queries
    clock: Callable[[], int]
