"""Surfaces: wiring only. Each function returns a :class:`~vidrec.pipeline.runner.Surface`."""

from vidrec.pipeline.surfaces.category import category_surface
from vidrec.pipeline.surfaces.deps import PipelineDeps
from vidrec.pipeline.surfaces.home import home_surface
from vidrec.pipeline.surfaces.related import related_surface
from vidrec.pipeline.surfaces.trending import trending_surface

__all__ = [
    "PipelineDeps",
    "category_surface",
    "home_surface",
    "related_surface",
    "trending_surface",
]
