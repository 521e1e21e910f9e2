"""Sensors: retry failed partitions, redrive the DLQ when the API is healthy, pick up late data,
and alert once per incident (failed checks, exhausted retries).

All start RUNNING; the daemon (`usage-billing ui` or `dagster dev`) evaluates them.
"""

import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg
import sqlalchemy as sa

from usage_assets.jobs import dlq_redrive_job, usage_billing_job
from usage_assets.partitions import monthly_partitions
from usage_billing import periods
from usage_billing.incidents import raise_incident, resolve_incident
from usage_billing.resources import AlertsResource, BillingApiResource, WarehouseResource

MAX_ATTEMPTS = 3
BACKOFF = (dt.timedelta(minutes=2), dt.timedelta(minutes=10), dt.timedelta(minutes=30))
FAILED_RUN_LOOKBACK = dt.timedelta(days=2)
ATTEMPT_TAG = "usage_billing/attempt"
RETRY_OF_TAG = "usage_billing/retry_of"
MONITORED_GROUPS = ("aggregated_usage", "reporting")

# Dead letters a redrive may deliver (the client judged them retryable).
_RETRYABLE_DEAD_LETTERS = sa.text("""
SELECT count(*) AS letters, max(d.failed_at) AS last_failed
FROM dead_letters AS d JOIN usage_outbox AS o USING (transaction_id)
WHERE o.status = 'dead' AND d.resolved_at IS NULL AND d.retryable
""")
_LAST_RECEIVED = sa.text("SELECT coalesce(max(received_at), now()) FROM raw_metrics")
# Raw metrics received after :after, by the month they occurred in (the partition they change).
_ARRIVALS = sa.text("""
SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
       count(*) AS rows, max(received_at) AS last_received
FROM raw_metrics
WHERE received_at > :after
GROUP BY 1
ORDER BY 1
""")
_PARTITION_REPORTED = sa.text(
    "SELECT EXISTS (SELECT 1 FROM usage_outbox WHERE partition_key = :partition_key)"
)


def _monitored_keys(context: dg.SensorEvaluationContext) -> set[dg.AssetKey]:
    graph = context.repository_def.asset_graph
    return {
        key
        for key in graph.materializable_asset_keys
        if graph.get(key).group_name in MONITORED_GROUPS
    }


def _failed_partitions(run: dg.DagsterRun) -> list[str]:
    """The partitions a failed run covered: its partition tag, or every month of its range."""
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    first = run.tags.get("dagster/asset_partition_range_start")
    last = run.tags.get("dagster/asset_partition_range_end")
    if first and last:
        keys = monthly_partitions.get_partition_keys()
        return [k for k in keys if first <= k <= last]
    return []


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _superseded(instance: dg.DagsterInstance, partition: str, since: float) -> bool:
    """A later run of the partition succeeded, or one is queued or running now."""
    later = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.SUCCESS],
            tags={"dagster/partition": partition},
            created_after=dt.datetime.fromtimestamp(since, dt.UTC),
        ),
        limit=1,
    )
    running = instance.get_run_records(
        filters=dg.RunsFilter(statuses=IN_FLIGHT, tags={"dagster/partition": partition}), limit=1
    )
    return bool(later or running)


@dg.sensor(
    job=usage_billing_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Re-runs the partition of a failed usage or reporting run (UI backfills included, "
    f"which run as Dagster's asset job) up to {MAX_ATTEMPTS} times with backoff, skipping runs "
    "Dagster retries itself; then alerts.",
)
def retry_failed_partitions(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    now = periods.now()
    monitored = _monitored_keys(context)
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], updated_after=now - FAILED_RUN_LOOKBACK
        ),
        limit=500,
    )
    handled: set[str] = set()  # newest failure first: one retry sequence per partition
    for record in records:
        run = record.dagster_run
        selection = set(run.asset_selection or ())
        if not (selection & monitored or run.job_name == usage_billing_job.name):
            continue
        if run.tags.get("dagster/will_retry") == "true":
            continue  # Dagster's own run retries handle it
        attempt = int(run.tags.get(ATTEMPT_TAG, "0"))
        root = run.tags.get(RETRY_OF_TAG, run.run_id)
        for partition in _failed_partitions(run):
            if partition in handled:
                continue
            handled.add(partition)
            if _superseded(context.instance, partition, record.end_time or 0):
                continue
            if attempt >= MAX_ATTEMPTS:
                raise_incident(
                    warehouse.get_engine(),
                    alerts.get_client(),
                    f"retries-exhausted:{root}:{partition}",
                    f"Usage billing: partition {partition} still fails after {attempt} retries",
                    [f"last failed run: {run.run_id}", f"first failed run: {root}"],
                )
                continue
            due = dt.datetime.fromtimestamp(record.end_time or 0, dt.UTC) + BACKOFF[attempt]
            if now < due:
                continue
            yield dg.RunRequest(
                run_key=f"retry-{run.run_id}-{partition}",
                partition_key=partition,
                asset_selection=sorted(selection & monitored) or None,
                tags={ATTEMPT_TAG: str(attempt + 1), RETRY_OF_TAG: root},
            )


@dg.sensor(
    job=dlq_redrive_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Redrives dead letters that died of unavailability (no answer, 429, 5xx) once the "
    "billing API answers an authenticated request again.",
)
def redrive_when_healthy(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    billing_api: BillingApiResource,
) -> dg.RunRequest | dg.SkipReason:
    with warehouse.get_engine().begin() as conn:
        summary = conn.execute(_RETRYABLE_DEAD_LETTERS).one()
    if not summary.letters:
        return dg.SkipReason("no retryable dead letters")
    if not billing_api.get_client().healthy():
        return dg.SkipReason(f"{summary.letters} dead letters wait: billing API still unhealthy")
    return dg.RunRequest(run_key=f"redrive-{summary.last_failed.isoformat()}-{summary.letters}")


@dg.sensor(
    job=usage_billing_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-materializes already-reported months that raw metrics arrived for since the "
    "last tick; the ledger sends only the delta.",
)
def late_raw_data(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    with warehouse.get_engine().begin() as conn:
        if context.cursor is None:
            start = conn.execute(_LAST_RECEIVED).scalar_one()
            context.update_cursor(start.isoformat())
            yield dg.SkipReason("started watching raw metrics received from now on")
            return
        after = dt.datetime.fromisoformat(context.cursor)
        arrivals = conn.execute(_ARRIVALS, {"after": after}).all()
        partitions = set(monthly_partitions.get_partition_keys())
        for arrival in arrivals:
            reported = conn.execute(
                _PARTITION_REPORTED, {"partition_key": arrival.month}
            ).scalar_one()
            if reported and arrival.month in partitions:
                yield dg.RunRequest(
                    run_key=f"late-{arrival.month}-{arrival.last_received.isoformat()}",
                    partition_key=arrival.month,
                    tags={
                        "usage_billing/trigger": "late_data",
                        "usage_billing/late_rows": str(arrival.rows),
                    },
                )
    if arrivals:
        context.update_cursor(max(a.last_received for a in arrivals).isoformat())


def build_check_alert_sensor(check_keys: Sequence[dg.AssetCheckKey]) -> dg.SensorDefinition:
    """Alerts once per incident when a check's latest execution failed; clears when it passes."""

    @dg.sensor(
        name="alert_on_failed_checks",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts an alert to the webhook when an asset check starts failing (once per "
        "incident) and closes the incident when it passes again.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alerts: AlertsResource
    ) -> dg.SkipReason:
        storage = context.instance.event_log_storage
        latest = storage.get_latest_asset_check_execution_by_key(list(check_keys))
        failing = []
        for key, record in latest.items():
            incident = f"check:{key.asset_key.to_user_string()}:{key.name}"
            if record.status.value == "FAILED":
                failing.append(incident)
                evaluation = (
                    record.event.dagster_event.event_specific_data if record.event else None
                )
                lines = [f"run: {record.run_id}"] + [
                    f"{name}: {value.value}"
                    for name, value in (evaluation.metadata.items() if evaluation else [])
                    if name.endswith("_count") and value.value
                ]
                raise_incident(
                    warehouse.get_engine(),
                    alerts.get_client(),
                    incident,
                    f"Usage billing check failed: {key.asset_key.to_user_string()} / {key.name}",
                    lines,
                )
            elif record.status.value == "SUCCEEDED":
                resolve_incident(warehouse.get_engine(), incident)
        return dg.SkipReason(f"{len(failing)} failing checks")

    return _sensor
