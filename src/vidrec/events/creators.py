"""Video → creator lookup for not-interested events (events carry no creator).

Two sources, in order: the artefact's catalogue (numpy arrays from its rule table, in process:
every video the artefacts know) and, for videos uploaded since, a ``vcr:{b<k>}:<video_id>``
string that the processor itself writes when it applies the ``upload`` event (``user_id`` =
creator). An upload and a not-interested on it travel on different partitions, so a
not-interested applied before its upload finds no creator and blocks only the video (counted as
``unknown``).
"""

from __future__ import annotations

import numpy as np

from vidrec.contracts.catalogue import Catalogue
from vidrec.contracts.keys import creator_key
from vidrec.events.streams import Client
from vidrec.schema import EngagementEvent, EventType


class CreatorLookup:
    def __init__(self, client: Client, n_buckets: int, catalogue: Catalogue | None) -> None:
        self.client = client
        self.n_buckets = n_buckets
        self.catalogue = catalogue
        self.unknown = 0  # lookups that found no creator

    def remember(self, event: EngagementEvent) -> None:
        """Record the creator of an uploaded video (idempotent: a plain SET)."""
        if event.type == EventType.UPLOAD:
            self.client.set(creator_key(event.video_id, self.n_buckets), event.user_id)

    def __call__(self, video_id: int) -> int:
        """The creator of ``video_id``, -1 when unknown."""
        if self.catalogue is not None:
            rows, known = self.catalogue.rows(np.asarray([video_id], dtype=np.int64))
            if known[0]:
                return int(self.catalogue.creator_id[rows[0]])
        raw = self.client.get(creator_key(video_id, self.n_buckets))
        if raw is None:
            self.unknown += 1
            return -1
        return int(raw)
