"""How long a customer's portal page takes against the store's size, next to the all-customer
as-of read the hourly run pays.

    python -m benchmarks.portal            # --customers 1000 --scale 0.05 --pages 8

On a scratch database: `--customers` profiled customers' raw metrics from January 1st to the clock
(March 12th, 09:00; volumes scaled by `--scale`), March aggregated through Dagster. Then, in this
process, the best of 3 runs of the as-of read of every customer (`usage_history.read_month`, what
the insights assets read), and for `--pages` customers: the figures of one page
(`portal.figures.customer_month`, the read scoped to that customer included) and the JSON endpoint
over loopback HTTP through the real server (median and worst).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time

import dagster as dg
import httpx

from benchmarks._common import machine, scratch_database, timed
from usage_assets.assets.aggregated_usage import usage_assets
from usage_billing import contracts, db, loader, pricing, usage_history
from usage_billing.portal import app, figures, links, server
from usage_billing.resources import WarehouseResource
from usage_billing.synthetic import profiles
from usage_billing.synthetic.plan import SeedPlan

CLOCK = dt.datetime(2025, 3, 12, 9, tzinfo=dt.UTC)
MONTH = "2025-03"
SECRET = b"benchmark-portal-secret-not-for-production"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    os.environ["USAGE_BILLING_NOW"] = CLOCK.isoformat()
    found = profiles.profiles(
        args.customers, dt.date(2025, 1, 1), dt.date(2025, 4, 1), args.seed, args.scale
    )
    plan = SeedPlan("portal", (), dt.datetime(2025, 1, 1, tzinfo=dt.UTC), CLOCK, CLOCK, args.seed)
    print(machine())
    with scratch_database() as url:
        engine = db.create_engine(url)
        started = time.perf_counter()
        lines = (json.dumps(d) for p in found for d in profiles.raw_documents(plan, p))
        loaded = loader.load_lines(engine, lines, source="portal-benchmark").loaded
        print(f"loaded {loaded:,} raw rows in {time.perf_counter() - started:.1f} s")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE raw_metrics")
        resources = {"warehouse": WarehouseResource(database_url=url)}
        assert dg.materialize(usage_assets, partition_key=MONTH, resources=resources).success

        everyone, _ = timed(lambda: usage_history.read_month(engine, MONTH, CLOCK))
        card, commits = pricing.load_rate_card(), contracts.load_contracts()
        everybody = sorted({p.customer_id for p in found})
        customers = everybody[:: max(len(everybody) // args.pages, 1)][: args.pages]
        page_seconds = [
            timed(lambda c=c: figures.customer_month(engine, card, commits, c, CLOCK), 1)[0]
            for c in customers
        ]
        with server.running(app.create_app(engine, SECRET)) as base:
            http_seconds = []
            for customer in customers:
                query = links.signed_query(SECRET, customer, CLOCK + dt.timedelta(days=1))
                started = time.perf_counter()
                response = httpx.get(f"{base}/api/v1/month?{query}", timeout=300)
                http_seconds.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text[:200]
        engine.dispose()
    page = statistics.median(page_seconds)
    print(f"customers {args.customers:,}, raw rows {loaded:,}, pages {len(customers)}")
    print(f"as-of read of every customer (best of 3): {everyone:.2f} s")
    print(f"one page's figures: median {page:.2f} s, worst {max(page_seconds):.2f} s")
    print(
        f"JSON endpoint over HTTP: median {statistics.median(http_seconds):.2f} s, "
        f"worst {max(http_seconds):.2f} s"
    )
    print(f"one page / every customer's read: {page / everyone:.1%}")


if __name__ == "__main__":
    main()
