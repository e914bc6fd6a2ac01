"""Development tooling: the local stack, benchmarks and load tests.

Kept apart from the runtime package :mod:`vidrec` so that the runtime images do not ship it:
nothing in ``vidrec`` imports it (a test enforces that), and its commands join the ``vidrec``
CLI through an entry point only where it is installed.
"""
