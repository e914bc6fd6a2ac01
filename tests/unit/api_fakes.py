"""In-memory stand-ins for the API's edges, shared by the API unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vidrec.schema import EngagementEvent, VideoUpload


class ListWriter:
    """An in-memory EventWriter: keeps what would have been appended."""

    def __init__(self) -> None:
        self.events: list[EngagementEvent] = []
        self.videos: list[VideoUpload] = []

    async def append(self, events: Sequence[EngagementEvent]) -> None:
        self.events.extend(events)

    async def append_video(self, video: VideoUpload) -> None:
        self.videos.append(video)


class NeverRunner:
    """Bad input must be rejected before the pipeline is touched."""

    async def run(self, surface: Any, ctx: Any) -> list[Any]:
        raise AssertionError("pipeline ran for a bad request")

    async def fallback(self, surface: Any, ctx: Any) -> list[Any]:
        raise AssertionError("pipeline ran for a bad request")
