"""Metric names and buckets that one part exports and another queries.

Serving and the event processor export these; the rollout analysis builds its PromQL from the
same names, so a rename cannot silently leave a quality gate reading nothing. Counters are
exported with the ``_total`` suffix.
"""

from __future__ import annotations

REQUEST_SECONDS = "vidrec_request_seconds"  # histogram {endpoint, variant}
REQUESTS = "vidrec_requests"  # counter {endpoint, variant, code}
SCORE = "vidrec_score"  # histogram {head, variant}, SCORE_BUCKETS
IMPRESSIONS = "vidrec_impressions"  # counter {variant}, from the event processor
CLICKS = "vidrec_clicks"  # counter {variant}
WATCH_SECONDS = "vidrec_watch_seconds"  # summary {variant}
WATCH_SECONDS_SQUARED = "vidrec_watch_seconds_squared"  # counter {variant}
DEAD_LETTERS = "vidrec_dead_letters"  # counter {group, reason}: entries a consumer set aside
CONSUMER_LAG = "vidrec_consumer_lag"  # gauge {group}: undelivered + pending entries
CONSUMER_PENDING = "vidrec_consumer_pending"  # gauge {group}: delivered, not yet acknowledged

SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # probabilities 0.05 … 0.95
