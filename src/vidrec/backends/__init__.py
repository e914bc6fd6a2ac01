"""Online serving backends: the clients the request pipeline is injected with.

In-process implementations of the protocols in :mod:`vidrec.pipeline.clients` (retrieval
from the artefact's index and rule tables, features from the online store with an LRU, the
Triton ranker, the impression stream) and the preparation of serving state. The HTTP/gRPC
adapters live in :mod:`vidrec.api`.
"""
