"""The request mix: which share of a user's requests goes to each endpoint.

``"home=70,related=15,trending=5,events=10"`` → normalised weights. The default is the one
users asked for: home feed 70 %, related 15 %, trending 5 %, engagement events 10 %.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

KINDS = ("home", "related", "trending", "events")
DEFAULT_MIX: dict[str, float] = {"home": 70.0, "related": 15.0, "trending": 5.0, "events": 10.0}


def parse_mix(text: str | None) -> dict[str, float]:
    """Weights by kind, summing to 1; kinds left out get 0. Raises ``ValueError`` naming the
    offending part."""
    if not text:
        raw = dict(DEFAULT_MIX)
    else:
        raw = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in KINDS:
                raise ValueError(
                    f"--mix {part!r}: expected KIND=WEIGHT with KIND one of {', '.join(KINDS)}"
                )
            try:
                weight = float(value)
            except ValueError:
                raise ValueError(f"--mix {part!r}: weight {value!r} is not a number") from None
            if weight < 0:
                raise ValueError(f"--mix {part!r}: weight must be ≥ 0")
            raw[name] = weight
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"--mix {text!r}: the weights add up to 0")
    return {k: raw.get(k, 0.0) / total for k in KINDS}


def pick(rng: random.Random, mix: Mapping[str, float]) -> str:
    kinds = [k for k in KINDS if mix.get(k, 0.0) > 0]
    return rng.choices(kinds, [mix[k] for k in kinds])[0]


def describe(mix: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {mix[k]:.0%}" for k in KINDS if mix.get(k, 0.0) > 0)
