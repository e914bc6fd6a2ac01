"""Schemathesis against a running API: every operation on its own, then linked sequences.

The published OpenAPI document has no links, so :func:`with_links` adds the ones a client
really follows (post an event, then read that user's feed or that video's related list;
upload a video, then ask for its related list; forget a user, then read their feed) before
the stateful run. Only one check is made: no 5xx, ever (what the contract must hold whatever
the input; the finer status-code rules are the unit tests'). Each failure names the request.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.stateful.state_machine import APIStateMachine, StepInput, StepOutput

TIMEOUT_S = 60.0
EVENTS, HOME, RELATED, VIDEOS, FORGET = (
    "log_engagement",
    "recommend_home",
    "recommend_related",
    "upload_video",
    "forget_user",
)


def _link(operation: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation, "parameters": parameters}


# (source operation, status) -> links; an event batch is one event or a list of them.
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    (EVENTS, "202"): {
        "HomeOfTheFirstUser": _link(HOME, user_id="$request.body#/0/user_id"),
        "HomeOfTheUser": _link(HOME, user_id="$request.body#/user_id"),
        "RelatedOfTheFirstVideo": _link(
            RELATED, video_id="$request.body#/0/video_id", user_id="$request.body#/0/user_id"
        ),
        "ForgetTheFirstUser": _link(FORGET, user_id="$request.body#/0/user_id"),
    },
    (VIDEOS, "202"): {"RelatedOfTheUpload": _link(RELATED, video_id="$request.body#/video_id")},
    (FORGET, "200"): {"HomeOfTheForgotten": _link(HOME, user_id="$response.body#/user_id")},
}


def with_links(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with :data:`LINKS` added to the responses they start from."""
    spec = copy.deepcopy(spec)
    by_id = {
        op["operationId"]: op
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    for (source, status), links in LINKS.items():
        by_id[source]["responses"][status].setdefault("links", {}).update(links)
    return spec


@dataclass
class Tally:
    """Status codes per operation, and how many calls a link fed with a prior call's data."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    linked: Counter[str] = field(default_factory=Counter)  # link id -> calls it fed
    no_invalid_input: list[str] = field(default_factory=list)  # operations without input

    def add(self, operation: str, status: int) -> None:
        self.statuses.setdefault(operation, Counter())[status] += 1

    def total(self, operation: str | None = None) -> int:
        ops = [operation] if operation else list(self.statuses)
        return sum(sum(self.statuses.get(op, Counter()).values()) for op in ops)

    def count(self, low: int, high: int) -> int:
        return sum(n for c in self.statuses.values() for s, n in c.items() if low <= s < high)


def _fail_message(case: schemathesis.Case, response: Any) -> str:
    return (
        f"{response.status_code} from {case.operation.label}:\n"
        f"{case.as_curl_command()}\n{response.text[:2000]}"
    )


def load(base_url: str, headers: dict[str, str]) -> schemathesis.schemas.BaseSchema:
    spec = httpx.get(f"{base_url}/api/v1/openapi.json", headers=headers, timeout=30).json()
    schema = schemathesis.openapi.from_dict(with_links(spec))
    schema.config.generation.update(modes=list(GenerationMode))  # valid and invalid inputs
    return schema


def fuzz_operations(
    base_url: str, headers: dict[str, str], examples: int, tally: Tally
) -> list[str]:
    """``examples`` valid and as many invalid requests per operation (none for one that
    takes no input: nothing can be made invalid); the 5xx found."""
    schema = load(base_url, headers)
    failures: list[str] = []
    for result, mode in itertools.product(schema.get_all_operations(), GenerationMode):
        operation = result.ok()

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=TIMEOUT_S)
            tally.add(case.operation.definition.raw.get("operationId", "?"), response.status_code)
            if response.status_code >= 500:
                failures.append(_fail_message(case, response))

        try:
            call()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise
            tally.no_invalid_input.append(operation.definition.raw.get("operationId", "?"))
    return failures


def fuzz_stateful(
    base_url: str, headers: dict[str, str], scenarios: int, steps: int, tally: Tally
) -> list[str]:
    """``scenarios`` sequences of up to ``steps`` calls chained by :data:`LINKS`; 5xx found."""
    schema = load(base_url, headers)
    failures: list[str] = []
    machine: type[APIStateMachine] = schema.as_state_machine()

    class Linked(machine):  # type: ignore[valid-type, misc]
        def step(self, input: StepInput) -> StepOutput:
            if input.transition is not None and input.applied_parameters:
                tally.linked[input.transition.id] += 1
            return super().step(input)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base_url, "headers": headers, "timeout": TIMEOUT_S}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            tally.add(case.operation.definition.raw.get("operationId", "?"), response.status_code)
            if response.status_code >= 500:
                failures.append(_fail_message(case, response))

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=[not_a_server_error])

    Linked.run(
        settings=settings(
            max_examples=scenarios,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    return failures
