"""The ``Strategy`` protocol and what the engine tells a strategy on each tick."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from vidrec.rollout.spec import RolloutStatus


class Move(enum.Enum):
    HOLD = "hold"  # stay Progressing (waiting for a pause to elapse or analysis to pass)
    PAUSE = "pause"  # an indefinite pause step: wait for a person
    PROMOTE = "promote"  # every step done: shift all traffic to the candidate


@dataclass(frozen=True)
class Tick:
    now: float
    resumed: bool = False  # a person resumed this tick: an indefinite pause step is done
    analysis_gated: bool = True  # False when the rollout has no metrics: gates pass at once


class Strategy(Protocol):
    @property
    def scale_down_delay_s(self) -> float: ...

    @property
    def promotion_reason(self) -> str:
        """Why a PROMOTE move happened, for the Promoting message and Event."""
        ...

    def start(self, status: RolloutStatus, now: float) -> RolloutStatus:
        """The candidate just became ready: the first step begins now."""
        ...

    def analysing(self, status: RolloutStatus) -> bool:
        """Whether analysis runs now (candidate serving real traffic, or a preview gate)."""
        ...

    def advance(self, status: RolloutStatus, tick: Tick) -> tuple[RolloutStatus, Move]:
        """Progress as far as this tick allows; ``status.passed_checks`` already counts
        this tick's analysis run."""
        ...


def enter_step(status: RolloutStatus, index: int, now: float) -> RolloutStatus:
    """Begin step ``index``: its clock starts and its analysis gate counts from zero."""
    return status.replace(step_index=index, step_started_at=now, passed_checks=0)


def elapsed(status: RolloutStatus, now: float) -> float:
    return now - (status.step_started_at if status.step_started_at is not None else now)
