"""The local stack runner: start, stop and inspect the real servers on one machine."""

from vidrec.stack.process import ManagedProcess, ServiceSpec, StackError
from vidrec.stack.runner import ServiceStatus, Stack
from vidrec.stack.state import StackState, read_stack_state

__all__ = [
    "ManagedProcess",
    "ServiceSpec",
    "ServiceStatus",
    "Stack",
    "StackError",
    "StackState",
    "read_stack_state",
]
