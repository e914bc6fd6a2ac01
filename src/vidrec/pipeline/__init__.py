"""The online request pipeline: stages of a few kinds, composed into surfaces, run by a runner.

See docs/architecture.md. Contracts: :mod:`.base` and :mod:`.clients`.
"""

from vidrec.contracts.routing import DEFAULT_TABLE, RoutingTable, VariantRoute, assign_variant
from vidrec.pipeline.base import (
    Candidate,
    DependencyError,
    FilterResult,
    Policy,
    RequestContext,
    UnknownVideo,
    UserContext,
)
from vidrec.pipeline.clients import RetrievedVideo
from vidrec.pipeline.fallbacks import PopularList
from vidrec.pipeline.observer import NullObserver, PipelineObserver, RecordingObserver
from vidrec.pipeline.resilience import BreakerState, CircuitBreaker, as_dependency_error
from vidrec.pipeline.runner import PipelineRunner, Surface
from vidrec.pipeline.surfaces import (
    PipelineDeps,
    category_surface,
    home_surface,
    related_surface,
    trending_surface,
)

__all__ = [
    "DEFAULT_TABLE",
    "BreakerState",
    "Candidate",
    "CircuitBreaker",
    "DependencyError",
    "FilterResult",
    "NullObserver",
    "PipelineDeps",
    "PipelineObserver",
    "PipelineRunner",
    "Policy",
    "PopularList",
    "RecordingObserver",
    "RequestContext",
    "RetrievedVideo",
    "RoutingTable",
    "Surface",
    "UnknownVideo",
    "UserContext",
    "VariantRoute",
    "as_dependency_error",
    "assign_variant",
    "category_surface",
    "home_surface",
    "related_surface",
    "trending_surface",
]
