"""The public API as published, against the REAL server: `bentoml serve` (Recommender) with
auth on, over a real Redis prepared from the `test` artefact (no Triton: the ranker is
skipped, answers are degraded but complete — what is judged here is the HTTP contract).

- schemathesis generates requests from /api/v1/openapi.json: no 5xx, ever;
- requests without credentials are refused (401); probes and /metrics stay open;
- after serving many users, no /metrics label value is a user or video id;
- DELETE /api/v1/users/{id} removes the user's online keys and leaves a tombstone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.integration.settings import SLOW_MACHINE
from vidrec.config import REPO_ROOT, FeatureConfig, RedisConfig
from vidrec.features.session import SESSION_ENTITY
from vidrec.features.stores import USER_ENTITY, key_for
from vidrec.offline.serving_prep import prepare_serving
from vidrec.security.forget import tombstone_key
from vidrec.security.pseudonym import Pseudonymizer

sys.path.insert(0, str(Path(__file__).parent))
from redis_servers import _free_port, standalone_redis

pytestmark = pytest.mark.integration
API_KEY = "integration-key-0123456789"
SALT = "api-test-salt"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
START_S = 240.0


class Server:
    def __init__(self, url: str, redis_url: str) -> None:
        self.url = url
        self.redis_url = redis_url


@pytest.fixture(scope="module")
def server(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("api-sec")
    with standalone_redis() as redis_url:
        prepare_serving(artefacts, RedisConfig(url=redis_url, cluster=False),
                        FeatureConfig().n_buckets, progress=False)  # fmt: skip
        port = _free_port()
        env = {
            **os.environ,
            "HOME": str(work), "TMPDIR": str(work), "BENTOML_HOME": str(work / "bentoml"),
            "VIDREC_SERVING__ARTEFACTS_DIR": str(artefacts),
            "VIDREC_REDIS__URL": redis_url, "VIDREC_REDIS__CLUSTER": "false",
            "VIDREC_TRITON__GRPC_PORT": str(_free_port()),  # nothing there: ranker skipped
            "VIDREC_SERVING__API_KEYS": f"{API_KEY},second-key",
            "VIDREC_EVENTS__ID_SALT": SALT,
            "OMP_NUM_THREADS": "1",
            **SLOW_MACHINE,
        }  # fmt: skip
        log = work / "bento.log"
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", "service:Recommender",
             "--host", "127.0.0.1", "--port", str(port),
             "--working-dir", str(REPO_ROOT / "bentos" / "recommender")],
            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"bentoml exited: {log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not ready: {log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield Server(url, redis_url)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_requests_without_credentials_are_refused(server: Server) -> None:
    for method, path in (
        ("GET", "/api/v1/recommendations/home?user_id=1"),
        ("GET", "/api/v1/recommendations/trending?region=north"),
        ("POST", "/api/v1/events/engagement"),
        ("DELETE", "/api/v1/users/1"),
    ):
        resp = httpx.request(method, server.url + path, timeout=30)
        assert resp.status_code == 401, (path, resp.text)
        assert resp.json()["field"] == "Authorization"
        bad = httpx.request(method, server.url + path, timeout=30,
                            headers={"Authorization": "Bearer nope"})  # fmt: skip
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_credentials"
    for path in ("/api/v1/health", "/api/v1/metrics", "/api/v1/openapi.json"):
        assert httpx.get(server.url + path, timeout=30).status_code == 200
    ok = httpx.get(f"{server.url}/api/v1/recommendations/home?user_id=1", headers=AUTH, timeout=60)
    assert ok.status_code == 200 and ok.json()["items"]


def test_no_metric_label_is_a_user_or_video_id(server: Server) -> None:
    users = list(range(3000, 3040))
    videos: set[int] = set()
    with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=60) as c:
        for u in users:
            items = c.get("/api/v1/recommendations/home", params={"user_id": u}).json()["items"]
            videos |= {i["video_id"] for i in items}
            if items:
                c.get("/api/v1/recommendations/related",
                      params={"video_id": items[0]["video_id"], "user_id": u})  # fmt: skip
        text = c.get("/api/v1/metrics").text
    assert videos
    labels = re.findall(r'(\w+)="([^"]*)"', text)
    assert labels, "no labelled metrics were exported"
    ids = {str(i) for i in users} | {str(v) for v in videos}
    offending = {(k, v) for k, v in labels if v in ids and k != "le"}
    assert not offending, f"ids in metric labels: {sorted(offending)[:5]}"
    assert {k for k, _ in labels} <= {"endpoint", "variant", "code", "surface", "stage",
                                      "direction", "reason", "head", "le", "transport"}  # fmt: skip


def test_forget_removes_online_state_and_leaves_a_tombstone(server: Server) -> None:
    n = FeatureConfig().n_buckets
    client = redis.Redis.from_url(server.redis_url)
    user = 7
    keys = [key_for(USER_ENTITY, user, n), key_for(SESSION_ENTITY, user, n)]
    assert client.exists(*keys) >= 1  # prepared from the artefact
    resp = httpx.delete(f"{server.url}/api/v1/users/{user}", headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["deleted_keys"] >= 1
    assert client.exists(*keys) == 0
    pseudo = Pseudonymizer(SALT).user(user)
    assert client.exists(tombstone_key(user, pseudo, n))
    assert client.hget("vidrec:tombstones", str(pseudo)) is not None
    assert client.hget("vidrec:tombstones", str(user)) is None  # the raw id is not stored
    # The user is served as a stranger from now on: no history, still a 200.
    home = httpx.get(f"{server.url}/api/v1/recommendations/home?user_id={user}",
                     headers=AUTH, timeout=60)  # fmt: skip
    assert home.status_code == 200
    client.close()


def test_openapi_contract_has_no_server_errors(server: Server) -> None:
    """Every published operation, fuzzed from its schema (bounded: a few examples each)."""
    api = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 7
    statuses: list[int] = []
    for operation in operations:

        @settings(max_examples=8, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            resp = case.call_and_validate(
                base_url=server.url, headers=AUTH, checks=[not_a_server_error], timeout=60
            )
            statuses.append(resp.status_code)

        call()
    # It really exercised the server: accepted and refused inputs alike.
    assert len(statuses) >= 2 * len(operations)
    assert any(200 <= c < 300 for c in statuses) and any(400 <= c < 500 for c in statuses)
