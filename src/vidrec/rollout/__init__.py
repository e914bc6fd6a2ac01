"""Model rollouts: the ``ModelRollout`` spec and status, a pure rollout engine (canary and
blue-green strategies), metric analysis and notifiers.

The kopf handlers in ``operators/rollout`` read the world (weights, metric values, model
state), call :func:`vidrec.rollout.engine.step` and apply the actions it returns, so every
decision here is testable without a cluster. Import submodules directly; this package
imports nothing heavy.
"""
