"""Named sizes of the offline pipeline: how much to simulate and how long to train.

``test`` runs in well under a minute for the test suite, ``demo`` is the newcomer's first run
(≤ 15 minutes on a 2-core machine), ``full`` uses every KuaiRec user for a month.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidrec.errors import InputError


@dataclass(frozen=True)
class Profile:
    name: str
    n_users: int | None  # None = every KuaiRec user
    days: int
    sessions_per_user_per_day: float
    slate_size: int
    two_tower_epochs: int
    ranker_epochs: int
    batch_size: int


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("test", 1500, 10, 1.0, 10, two_tower_epochs=6, ranker_epochs=4, batch_size=1024),
        Profile("demo", None, 14, 1.0, 10, two_tower_epochs=6, ranker_epochs=4, batch_size=2048),
        Profile("full", None, 30, 3.0, 12, two_tower_epochs=8, ranker_epochs=6, batch_size=4096),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(
            f"--profile: unknown profile {name!r}; choose one of {', '.join(PROFILES)}"
        ) from None
