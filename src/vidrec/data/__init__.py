"""Datasets: the real KuaiRec catalogue, the behaviour simulator, synthetic scale catalogues."""

from vidrec.data.compare import WatchRatioComparison, compare_watch_ratio, plot_watch_ratio
from vidrec.data.errors import DatasetError
from vidrec.data.kuairec import (
    INTERACTION_SCHEMA,
    KUAIREC_LOG_START_MS,
    USERS_SCHEMA,
    Catalog,
    load_catalog,
)
from vidrec.data.scale import ScaleCatalog, scale_catalog
from vidrec.data.simulator import SimConfig, benchmark_simulator, schedule_uploads, simulate
from vidrec.data.user_features import USER_STATIC_DIM

__all__ = [
    "INTERACTION_SCHEMA",
    "KUAIREC_LOG_START_MS",
    "USERS_SCHEMA",
    "USER_STATIC_DIM",
    "Catalog",
    "DatasetError",
    "ScaleCatalog",
    "SimConfig",
    "WatchRatioComparison",
    "benchmark_simulator",
    "compare_watch_ratio",
    "load_catalog",
    "plot_watch_ratio",
    "scale_catalog",
    "schedule_uploads",
    "simulate",
]
