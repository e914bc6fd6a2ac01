"""Tensor names and shapes of the exported models: the contract between export, the Triton
configs and the clients, kept in one place so the three cannot drift apart.

The ranker has ONE output, ``scores`` float32[B, 3], columns in ``RANKER_HEADS`` order,
rather than one tensor per head: a single contiguous transfer per request, and the head order
is carried by the config (parameter ``heads``) and checked by the client.
"""

from __future__ import annotations

from vidrec.schema import RANKER_HEADS

RANKER_INPUT = "features"  # float32[B, D]
RANKER_OUTPUT = "scores"  # float32[B, len(RANKER_HEADS)]
N_HEADS = len(RANKER_HEADS)

USER_X_INPUT = "user_x"  # float32[B, Du]
HISTORY_INPUT = "history"  # int64[B, H], -1 padded
USER_EMBEDDING_OUTPUT = "embedding"  # float32[B, E], L2-normalised
