"""The ground floor: what two parts of vidrec share, each defined once.

A writer and its readers live in different packages (the event processor writes counters that
serving reads, the operator writes the routing table that serving reads, the API writes
impressions that the event processor joins). They agree through this package, which imports
nothing of vidrec but ``config``, ``errors`` and ``schema``:

- :mod:`.keys` — every Redis key layout;
- :mod:`.routing` — the ranker routing table (operator → serving);
- :mod:`.impressions` — the impression-log entry and the request → variant record;
- :mod:`.trending` — the decayed trending sets (event processor → serving);
- :mod:`.manifest`, :mod:`.artefacts`, :mod:`.catalogue` — the artefact directory;
- :mod:`.metrics` — metric names and buckets that the rollout analysis queries.
"""
