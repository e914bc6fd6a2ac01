"""Rollout strategies: how traffic moves toward the candidate while the rollout progresses.

The engine owns everything shared (loading, analysis counters, commands, pausing,
promotion, rollback); a strategy only says where the weight is and whether to hold, pause
or promote. :func:`strategy_for` picks the implementation by the spec's strategy type.
"""

from __future__ import annotations

from vidrec.rollout.spec import BlueGreenStrategy, CanaryStrategy
from vidrec.rollout.spec import Strategy as StrategySpec
from vidrec.rollout.strategies.base import Move, Strategy, Tick
from vidrec.rollout.strategies.blue_green import BlueGreen
from vidrec.rollout.strategies.canary import Canary

__all__ = ["BlueGreen", "Canary", "Move", "Strategy", "Tick", "strategy_for"]


def strategy_for(spec: StrategySpec) -> Strategy:
    if isinstance(spec, CanaryStrategy):
        return Canary(spec)
    if isinstance(spec, BlueGreenStrategy):
        return BlueGreen(spec)
    raise TypeError(f"strategy: unsupported {type(spec).__name__}")
