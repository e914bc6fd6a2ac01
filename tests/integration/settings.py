"""Settings the integration tests share."""

# Generous stage deadlines for servers started by tests: they judge behaviour, not speed, on
# two shared cores; the benchmark measures speed with the default deadlines.
SLOW_MACHINE = {
    f"VIDREC_SERVING__DEADLINE_{k}_MS": "3000"
    for k in ("CONTEXT", "SOURCES", "FILTERS", "HYDRATE", "SCORE", "MIX")
} | {"VIDREC_SERVING__DEADLINE_TOTAL_MS": "9000", "VIDREC_SERVING__BREAKER_FAILURES": "3"}
