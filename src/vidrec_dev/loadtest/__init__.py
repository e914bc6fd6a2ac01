"""Load tests against the latency SLA: the logic behind ``load_tests/locustfile.py``.

Locust runs as its own process (it monkey-patches the standard library with gevent), so this
package is split by which side of that boundary a module lives on:

- inside the Locust process (light imports only): :mod:`.sla` (the gate), :mod:`.mix`
  (request mix), :mod:`.workload` (user/video ids, engagement events), :mod:`.timeline`
  (per-second latency, errors and degraded answers; the run summary);
- outside it: :mod:`.locust_run` (start Locust as a subprocess, read its summary),
  :mod:`.report` (PNG plots), :mod:`.stack` (a load-test stack on its own ports, RSS,
  event accounting), and the three experiments :mod:`.capacity`, :mod:`.soak`,
  :mod:`.chaos`, wired into ``vidrec bench capacity|soak`` and ``vidrec chaos`` by
  :mod:`.cli`.
"""
