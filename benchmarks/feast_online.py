"""Feast's `get_online_features` on the same Redis and the same video vectors as vidrec.

Runs in its own virtualenv (`make bench` creates `.venv-feast`): Feast pins numpy 2 / pyarrow
26, which the serving venv cannot take. It writes the given vectors into Feast's Redis online
store (``write_to_online_store``, Feast's own key layout and protobuf values), then times
``get_online_features`` for batches of ids and prints one JSON line of timings. The vidrec
side of the comparison is measured by `vidrec bench serving` on the same Redis and ids.

    .venv-feast/bin/python benchmarks/feast_online.py --redis 127.0.0.1:6379 \
        --vectors vectors.npy --ids ids.npy --batch 500 --repeats 50
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.repo_config import RegistryConfig, RepoConfig
from feast.types import Array, Float32


def build_store(repo: Path, redis: str, dim: int) -> tuple[FeatureStore, FeatureView]:
    source = FileSource(path=str(repo / "videos.parquet"), timestamp_field="event_timestamp")
    video = Entity(name="video", join_keys=["video_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="video_features",
        entities=[video],
        ttl=timedelta(days=3650),
        schema=[Field(name="vector", dtype=Array(Float32))],
        source=source,
        online=True,
    )
    config = RepoConfig(
        project="vidrec_bench",
        provider="local",
        registry=RegistryConfig(path=str(repo / "registry.db")),
        online_store={"type": "redis", "connection_string": redis},
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=str(repo),
    )
    store = FeatureStore(config=config)
    store.apply([video, view])
    return store, view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True, help="host:port of a standalone Redis")
    parser.add_argument("--vectors", type=Path, required=True, help="float32 [N, D] .npy")
    parser.add_argument("--ids", type=Path, required=True, help="int64 [N] .npy (video ids)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    vectors = np.load(args.vectors).astype(np.float32)
    ids = np.load(args.ids).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        now = datetime.now(UTC)
        frame = pd.DataFrame({"video_id": ids, "vector": list(vectors), "event_timestamp": now})
        frame.to_parquet(repo / "videos.parquet")
        store, _ = build_store(repo, args.redis, vectors.shape[1])
        start = time.perf_counter()
        store.write_to_online_store("video_features", frame)
        write_s = time.perf_counter() - start

        rng = np.random.default_rng(0)
        timings = []
        for _ in range(args.repeats):
            batch = rng.choice(ids, size=args.batch, replace=False)
            rows = [{"video_id": int(i)} for i in batch]
            start = time.perf_counter()
            result = store.get_online_features(
                features=["video_features:vector"], entity_rows=rows
            ).to_dict()
            timings.append(time.perf_counter() - start)
            got = result["vector"]
            if any(v is None for v in got):
                raise SystemExit("feast returned missing vectors: the write did not land")
        ms = np.array(timings) * 1000
        print(
            json.dumps(
                {
                    "feast_version": __import__("feast").__version__,
                    "rows_written": len(ids),
                    "write_s": write_s,
                    "batch": args.batch,
                    "p50_ms": float(np.percentile(ms, 50)),
                    "p99_ms": float(np.percentile(ms, 99)),
                }
            )
        )


if __name__ == "__main__":
    main()
