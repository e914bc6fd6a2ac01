"""Candidate sources, one per module; importing this package registers every one of them.

Each module holds its stage, its retrieval function (:func:`vidrec.pipeline.retrievers.retriever`)
and its explanation, so a new source is a new file here plus the line in a surface that lists
it (docs/architecture.md, "Add a candidate source").
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
