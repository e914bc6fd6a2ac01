"""``python -m vidrec.data``: simulator benchmark, watch-ratio check, scale-catalogue timing.

python -m vidrec.data bench --events 10000000
python -m vidrec.data compare --out report/watch_ratio.png
python -m vidrec.data scale --videos 10000000 [--save DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vidrec.config import load_config
from vidrec.data.compare import compare_watch_ratio, plot_watch_ratio
from vidrec.data.kuairec import load_catalog
from vidrec.data.scale import scale_catalog
from vidrec.data.simulator import SimConfig, benchmark_simulator, simulate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vidrec.data")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="time the simulator at about --events events")
    bench.add_argument("--events", type=int, default=10_000_000)
    bench.add_argument("--seed", type=int, default=0)
    compare = sub.add_parser("compare", help="simulated vs real watch ratios (+ PNG)")
    compare.add_argument("--out", type=Path, default=Path("watch_ratio.png"))
    compare.add_argument("--users", type=int, default=2000)
    scale = sub.add_parser("scale", help="generate a synthetic catalogue of --videos")
    scale.add_argument("--videos", type=int, default=1_000_000)
    scale.add_argument("--dim", type=int, default=32)
    scale.add_argument("--save", type=Path, default=None)
    args = parser.parse_args(argv)

    kuairec_dir = load_config().data.kuairec_dir
    if args.command == "bench":
        result = benchmark_simulator(args.events, load_catalog(kuairec_dir), seed=args.seed)
        print(
            f"{result.n_events:,} events in {result.seconds:.1f} s "
            f"({result.events_per_second:,.0f} events/s)"
        )
    elif args.command == "compare":
        catalog = load_catalog(kuairec_dir)
        events = simulate(catalog, SimConfig(n_users=args.users), progress=True)
        comparison = compare_watch_ratio(events, catalog.interactions)
        plot_watch_ratio(comparison, events, catalog.interactions, args.out)
        print(comparison)
    else:
        start = time.perf_counter()
        scaled = scale_catalog(args.videos, dim=args.dim, progress=True)
        print(f"{args.videos:,} videos x {args.dim} in {time.perf_counter() - start:.1f} s")
        if args.save is not None:
            print(f"saved to {scaled.save(args.save)}")


if __name__ == "__main__":
    main()
