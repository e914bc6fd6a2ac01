"""The engagement-event path: real-time features, the lake, labels (see each module)."""

from vidrec.events.labels import join_labels
from vidrec.events.lake import LakeWriter
from vidrec.events.processor import EventProcessor, Tally
from vidrec.events.streams import Entry, GroupReader, stream_names
from vidrec.events.trending import Decay, TrendingWriter

__all__ = [
    "Decay",
    "Entry",
    "EventProcessor",
    "GroupReader",
    "LakeWriter",
    "Tally",
    "TrendingWriter",
    "join_labels",
    "stream_names",
]
