"""Security on REAL Redis servers: AUTH and TLS for the clients vidrec builds, and the right
to be forgotten through the real event processor and lake writer (cluster)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest
import redis
from redis.cluster import RedisCluster

from vidrec.api.events import RedisStreamEventWriter
from vidrec.config import Config, RedisConfig, load_config
from vidrec.errors import InputError
from vidrec.events.__main__ import connect
from vidrec.events.event_log import read_event_log
from vidrec.events.lake import LakeWriter
from vidrec.events.processor import EventProcessor
from vidrec.features.session import SESSION_ENTITY, SessionState
from vidrec.features.stores import USER_ENTITY, RedisClusterStore, make_store
from vidrec.schema import EngagementEvent, EventType
from vidrec.security.forget import Eraser, LakeTombstones, tombstone_key
from vidrec.security.lake_crypto import LakeCrypto, is_encrypted
from vidrec.security.pseudonym import Pseudonymizer

sys.path.insert(0, str(Path(__file__).parent))
from redis_servers import REDIS_SERVER, _free_port, _require_binaries, _wait_until, redis_cluster

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery staple"
SALT = "test-salt"
LAKE_KEY = "11" * 32
T0 = 1_600_000_000_000


@contextmanager
def redis_with(args: list[str], port: int, probe: Callable[[], object]) -> Iterator[None]:
    _require_binaries()
    with tempfile.TemporaryDirectory(prefix="vidrec-redis-sec-") as tmp:
        cmd = [REDIS_SERVER, "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
               "--appendonly", "no", *args]  # fmt: skip
        log = Path(tmp) / "redis.log"
        proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            _wait_until(probe, f"redis-server {args} ({log.read_text(errors='replace')[-300:]})")
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_clients_authenticate_with_the_configured_password() -> None:
    port = _free_port()
    ok = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD)
    with redis_with(["--port", str(port), "--requirepass", PASSWORD], port, ok.ping):
        url = f"redis://127.0.0.1:{port}/0"
        store = make_store(RedisConfig(url=url, cluster=False, password=PASSWORD))
        store.put_many(USER_ENTITY, [1], [b"v"])
        assert store.get_many(USER_ENTITY, [1]) == [b"v"]
        assert connect(RedisConfig(url=url, cluster=False, password=PASSWORD), 1000).ping()
        refused = make_store(RedisConfig(url=url, cluster=False))
        with pytest.raises(redis.AuthenticationError):
            refused.get_many(USER_ENTITY, [1])
        with pytest.raises(redis.AuthenticationError):
            make_store(RedisConfig(url=url, cluster=False, password="wrong")).get_many(
                USER_ENTITY, [1]
            )


def _certs(out: Path) -> tuple[Path, Path, Path]:
    ca_key, ca, key, csr, crt = (out / n for n in ("ca.key", "ca.crt", "s.key", "s.csr", "s.crt"))
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "1", "-subj", "/CN=vidrec-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")  # fmt: skip
    ext = out / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "1", "-extfile", str(ext))  # fmt: skip
    return ca, crt, key


def test_clients_speak_tls_with_the_configured_ca(tmp_path: Path) -> None:
    ca, crt, key = _certs(tmp_path)
    port = _free_port()
    cfg = RedisConfig(url=f"redis://127.0.0.1:{port}/0", cluster=False, tls=True,
                      tls_ca_file=str(ca), password=PASSWORD)  # fmt: skip
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(crt),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
            "--tls-auth-clients", "no", "--requirepass", PASSWORD]  # fmt: skip
    probe = connect(cfg, 1000)
    with redis_with(args, port, probe.ping):
        store = make_store(cfg)
        store.put_many(USER_ENTITY, [2], [b"tls"])
        assert store.get_many(USER_ENTITY, [2]) == [b"tls"]
        plain = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=2)
        with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
            plain.ping()
        untrusted = RedisConfig(url=cfg.url, cluster=False, tls=True, password=PASSWORD)
        with pytest.raises(redis.ConnectionError):  # the test CA is not a system CA
            make_store(untrusted).get_many(USER_ENTITY, [2])


# --- right to be forgotten through the real consumers --------------------------------


def config(prefix: str, lake: Path) -> Config:
    return load_config({
        "VIDREC_SERVING__EVENT_STREAM_PREFIX": prefix, "VIDREC_SERVING__EVENT_PARTITIONS": "4",
        "VIDREC_EVENTS__ID_SALT": SALT, "VIDREC_EVENTS__LAKE_KEY": LAKE_KEY,
        "VIDREC_EVENTS__LAKE_DIR": str(lake),
    })  # fmt: skip


def events(users: list[int], start: int) -> list[EngagementEvent]:
    kinds = [EventType.IMPRESSION, EventType.CLICK, EventType.WATCH]
    return [
        EngagementEvent(event_id=f"e{start + i}", user_id=u, video_id=10 + i % 7,
                        type=kinds[i % 3], ts=T0 + (start + i) * 100, watch_ms=1000)
        for i, u in enumerate(u for u in users for _ in range(6))
    ]  # fmt: skip


def drain(worker: EventProcessor | LakeWriter) -> None:
    worker.reader.ensure_groups()  # before polling the groups' lag
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 20
    group = worker.reader.group
    client = worker.reader.client
    while time.monotonic() < deadline:
        groups = [next(g for g in client.xinfo_groups(s) if g["name"] in (group, group.encode()))
                  for s in worker.reader.streams]  # fmt: skip
        if all(not g["pending"] and not g["lag"] for g in groups):
            break
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)


def test_forgotten_user_is_erased_and_stays_out_of_sessions_and_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDREC_EVENTS__LAKE_KEY", raising=False)
    lake = tmp_path / "lake"
    cfg = config("sec", lake)
    pz = Pseudonymizer(SALT)
    victim, other = 3, 4
    with redis_cluster() as info:
        client = RedisCluster.from_url(info.url)
        store = RedisClusterStore(client, cfg.features.n_buckets)
        writer = RedisStreamEventWriter(client, "sec", 4, timeout_s=5.0)
        store.put_many(USER_ENTITY, [victim, other], [b"uv", b"ov"])
        asyncio.run(writer.append(events([victim, other], 0)))
        drain(EventProcessor(client, cfg, consumer="p", block_ms=20))
        assert all(store.get_many(SESSION_ENTITY, [victim, other]))

        eraser = Eraser(client, pz, cfg.features.n_buckets, cfg.events.tombstone_key)
        done = eraser.forget(victim)
        assert done.deleted_keys == 2 and not done.already
        assert store.get_many(USER_ENTITY, [victim]) == [None]
        assert store.get_many(SESSION_ENTITY, [victim]) == [None]
        assert store.get_many(USER_ENTITY, [other]) == [b"ov"]
        assert client.exists(tombstone_key(victim, pz.user(victim), cfg.features.n_buckets))
        assert eraser.forget(victim).already

        # Later events (and the ones still in the streams) bring nothing back.
        before = store.get_many(SESSION_ENTITY, [other])[0]
        asyncio.run(writer.append(events([victim, other], 100)))
        drain(EventProcessor(client, cfg, consumer="p2", block_ms=20))
        assert store.get_many(SESSION_ENTITY, [victim]) == [None]
        after = store.get_many(SESSION_ENTITY, [other])[0]
        assert after is not None and before is not None
        assert SessionState.decode(after) != SessionState.decode(before)

        lake_writer = LakeWriter(client, cfg, lake, consumer="l", block_ms=20, max_age_s=0)
        drain(lake_writer)
        lake_writer.flush()
        client.close()
    files = sorted(p for p in lake.rglob("*.parquet"))
    assert files and all(is_encrypted(f) for f in files)
    with pytest.raises(InputError, match="VIDREC_EVENTS__LAKE_KEY"):
        read_event_log(lake)  # no key in this environment
    log = read_event_log(lake, LakeCrypto.from_secret(LAKE_KEY))
    assert log.user_ids == pz.label() and log.encrypted
    ids = set(log.events["user_id"].to_list())
    assert ids == {pz.user(other)}  # hashed, and the forgotten user is not there at all
    assert log.events.height == 12
    assert LakeTombstones(lake).read().keys() == {pz.user(victim)}
    assert lake_writer.forgotten_dropped == 12
    assert log.events.filter(pl.col("user_id") == other).height == 0
