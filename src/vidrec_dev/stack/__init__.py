"""The local stack runner: start, stop and inspect the real servers on one machine."""

from vidrec_dev.stack.process import ManagedProcess, ServiceSpec, StackError
from vidrec_dev.stack.run_record import StackState, read_stack_state
from vidrec_dev.stack.runner import ServiceStatus, Stack

__all__ = [
    "ManagedProcess",
    "ServiceSpec",
    "ServiceStatus",
    "Stack",
    "StackError",
    "StackState",
    "read_stack_state",
]
