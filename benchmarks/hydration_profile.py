"""Where cold hydration time goes on Redis Cluster, and whether the bucket count matters.

Starts a real 3-master cluster and a standalone redis-server (the test harness), writes 20,000
packed video vectors with 8, 16, 24 and 64 hash-tag buckets, and times 500-key reads: the cluster
client's `mget_nonatomic` alone, `FeatureFetcher.video_vectors` (cold and warm LRU) and one
standalone MGET of the same keys. Run: `.venv/bin/python benchmarks/hydration_profile.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.redis_servers import redis_cluster, standalone_redis

from vidrec.config import RedisConfig, load_config
from vidrec.features import VIDEO_SPEC, make_store, pack_many, user_spec
from vidrec.features.stores import VIDEO_ENTITY, keys_for
from vidrec_dev.bench.serving import bench_hydration

N_IDS = 20_000


async def main() -> None:
    cfg = load_config({})
    blobs = pack_many(VIDEO_SPEC, np.random.rand(N_IDS, VIDEO_SPEC.dim).astype(np.float32), 1)
    ids = list(range(N_IDS))
    rng = np.random.default_rng(0)
    with redis_cluster() as cluster_info, standalone_redis() as standalone_url:
        for buckets in (8, 16, 24, 64):
            c = dataclasses.replace(
                cfg, features=dataclasses.replace(cfg.features, n_buckets=buckets)
            )
            cluster = make_store(RedisConfig(url=cluster_info.url, cluster=True), buckets)
            standalone = make_store(RedisConfig(url=standalone_url, cluster=False), buckets)
            for store in (cluster, standalone):
                for i in range(0, N_IDS, 1000):
                    store.put_many(VIDEO_ENTITY, ids[i : i + 1000], blobs[i : i + 1000])
            raw_cluster = []
            for _ in range(200):
                keys = keys_for(VIDEO_ENTITY, rng.choice(N_IDS, 500, replace=False), buckets)
                start = time.perf_counter()
                cluster.get_keys(keys)
                raw_cluster.append(time.perf_counter() - start)
            result = await bench_hydration(
                c,
                cluster,
                standalone,
                np.array(ids),
                user_spec(112),  # type: ignore[arg-type]
            )
            print(
                f"buckets={buckets}: cluster mget_nonatomic p50 "
                f"{np.median(raw_cluster) * 1000:.2f} ms, "
                + ", ".join(f"{k} {v:.2f}" for k, v in result.items() if "p50" in k)
            )
            cluster.close()
            standalone.close()


if __name__ == "__main__":
    asyncio.run(main())
