"""The API edges: HTTP (BentoML + Starlette) and gRPC adapters over one RecommendationService.

Every transport parses input into the ``schema.py`` query types (errors name the field), calls
the same :class:`~vidrec.api.service.RecommendationService`, and records metrics via
:class:`~vidrec.api.request_metrics.PrometheusObserver`. No recommendation logic lives here.
"""
