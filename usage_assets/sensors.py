"""Sensors: retry failed partitions, redrive the DLQ when the API is healthy, pick up late data,
alert once per incident (failed checks, exhausted retries), and deliver the alerts runs recorded.

Each sensor is a thin wrapper: it gathers what it needs (run records, rows, check results), hands
it to a plain function that decides (`plan_retries`, `late_data_requests`, `check_incidents`;
unit-tested without a database), and applies the decision. All start RUNNING; the daemon
(`usage-billing ui` or `dagster dev`) evaluates them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import sqlalchemy as sa

from usage_assets import runs
from usage_assets.jobs import dlq_redrive_job, usage_billing_job
from usage_assets.partitions import monthly_partitions
from usage_billing import db, periods
from usage_billing.incidents import deliver_due, raise_incident, resolve_incident
from usage_billing.resources import AlertsResource, BillingApiResource, WarehouseResource

MAX_ATTEMPTS = 3
BACKOFF = (dt.timedelta(minutes=2), dt.timedelta(minutes=10), dt.timedelta(minutes=30))
FAILED_RUN_LOOKBACK = dt.timedelta(days=2)
ATTEMPT_TAG = "usage_billing/attempt"
RETRY_OF_TAG = "usage_billing/retry_of"
MONITORED_GROUPS = ("aggregated_usage", "reporting")
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


# --- Retry failed partitions -----------------------------------------------------------------


@dataclass(frozen=True)
class FailedRun:
    """What the retry decision needs of a failed run."""

    run_id: str
    ended_at: dt.datetime
    partitions: tuple[str, ...]
    # The monitored assets it selected; empty when it ran the whole job (retry the whole job).
    selection: tuple[dg.AssetKey, ...] = ()
    attempt: int = 0  # how many retries preceded it
    root: str = ""  # the run that started its retry sequence ("" = itself)
    dagster_retries: bool = False  # Dagster's own run retries will retry it


@dataclass(frozen=True)
class PartitionRuns:
    """Other runs of a partition: one in flight now, and when the newest successful one began."""

    in_flight: bool = False
    last_success_created: dt.datetime | None = None


@dataclass(frozen=True)
class Exhausted:
    """A partition that still fails after the last retry: alert, do not retry."""

    partition: str
    run_id: str
    root: str
    attempts: int

    @property
    def incident(self) -> str:
        return exhausted_incident(self.partition)


def exhausted_incident(partition: str) -> str:
    """One incident per failing partition, however many run sequences fail (an hourly schedule
    starts a new one every hour); it closes when a run of the partition succeeds."""
    return f"retries-exhausted:{partition}"


@dataclass
class RetryPlan:
    requests: list[dg.RunRequest] = field(default_factory=list)
    exhausted: list[Exhausted] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # partitions that succeeded since


def plan_retries(
    failed: Sequence[FailedRun], partitions: Mapping[str, PartitionRuns], now: dt.datetime
) -> RetryPlan:
    """Which partitions to re-run now. `failed` is newest first: only a partition's newest failure
    counts (one retry sequence per partition), and none while a run of it is in flight or once
    one that began after the failure succeeded. Attempt n waits BACKOFF[n] after the failure;
    after MAX_ATTEMPTS retries the partition is reported exhausted instead."""
    plan = RetryPlan()
    handled: set[str] = set()
    for run in failed:
        for partition in run.partitions:
            if partition in handled:
                continue
            handled.add(partition)
            if run.dagster_retries:
                continue  # Dagster's own run retries have it: no second sequence from us
            others = partitions.get(partition, PartitionRuns())
            succeeded_later = (
                others.last_success_created is not None
                and others.last_success_created > run.ended_at
            )
            if succeeded_later:
                plan.recovered.append(partition)
            if others.in_flight or succeeded_later:
                continue
            root = run.root or run.run_id
            if run.attempt >= MAX_ATTEMPTS:
                plan.exhausted.append(Exhausted(partition, run.run_id, root, run.attempt))
            elif now >= run.ended_at + BACKOFF[run.attempt]:
                plan.requests.append(
                    dg.RunRequest(
                        run_key=f"retry-{run.run_id}-{partition}",
                        partition_key=partition,
                        asset_selection=list(run.selection) or None,
                        tags={ATTEMPT_TAG: str(run.attempt + 1), RETRY_OF_TAG: root},
                    )
                )
    return plan


def run_partitions(tags: Mapping[str, str], partition_keys: Sequence[str]) -> tuple[str, ...]:
    """The partitions a run covered: its partition tag, or every month of its range."""
    if "dagster/partition" in tags:
        return (tags["dagster/partition"],)
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    if first and last:
        return tuple(key for key in partition_keys if first <= key <= last)
    return ()


def _monitored_keys(context: dg.SensorEvaluationContext) -> set[dg.AssetKey]:
    graph = context.repository_def.asset_graph
    return {
        key
        for key in graph.materializable_asset_keys
        if graph.get(key).group_name in MONITORED_GROUPS
    }


def _failed_runs(context: dg.SensorEvaluationContext, now: dt.datetime) -> list[FailedRun]:
    """Failed usage or reporting runs of the lookback window, newest first."""
    monitored = _monitored_keys(context)
    partition_keys = monthly_partitions.get_partition_keys(current_time=now)
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], updated_after=now - FAILED_RUN_LOOKBACK
        ),
        limit=500,
    )
    failed = []
    for record in records:
        run = record.dagster_run
        selection = set(run.asset_selection or ()) & monitored
        if not (selection or run.job_name == usage_billing_job.name):
            continue
        failed.append(
            FailedRun(
                run_id=run.run_id,
                ended_at=dt.datetime.fromtimestamp(record.end_time or 0, dt.UTC),
                partitions=run_partitions(run.tags, partition_keys),
                selection=tuple(sorted(selection)),
                attempt=int(run.tags.get(ATTEMPT_TAG, "0")),
                root=run.tags.get(RETRY_OF_TAG, ""),
                dagster_retries=run.tags.get("dagster/will_retry") == "true",
            )
        )
    return failed


def _partition_runs(instance: dg.DagsterInstance, partition: str) -> PartitionRuns:
    tags = {"dagster/partition": partition}
    success = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS], tags=tags), limit=1
    )
    running = instance.get_run_records(
        filters=dg.RunsFilter(statuses=IN_FLIGHT, tags=tags), limit=1
    )
    return PartitionRuns(
        in_flight=bool(running),
        last_success_created=success[0].create_timestamp if success else None,
    )


@dg.sensor(
    job=usage_billing_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Re-runs the partition of a failed usage or reporting run (UI backfills included, "
    f"which run as Dagster's asset job) up to {MAX_ATTEMPTS} times with backoff, skipping runs "
    "Dagster retries itself; then alerts. First marks failed the runs whose `usage-billing "
    "materialize` process was killed, so they stop counting as in flight.",
)
def retry_failed_partitions(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    now = periods.now()
    for orphan in runs.fail_orphaned_runs(context.instance):
        context.log.warning(f"run {orphan.run_id}: its process was killed; marked failed")
    failed = _failed_runs(context, now)
    partitions = {p for run in failed if not run.dagster_retries for p in run.partitions}
    history = {p: _partition_runs(context.instance, p) for p in partitions}
    plan = plan_retries(failed, history, now)
    for exhausted in plan.exhausted:
        raise_incident(
            warehouse.get_engine(),
            alerts.get_client(),
            exhausted.incident,
            f"Usage billing: partition {exhausted.partition} still fails after "
            f"{exhausted.attempts} retries",
            [f"last failed run: {exhausted.run_id}", f"first failed run: {exhausted.root}"],
        )
    for partition in plan.recovered:
        resolve_incident(warehouse.get_engine(), exhausted_incident(partition))
    yield from plan.requests


# --- Redrive the dead-letter queue -------------------------------------------------------------

# What a redrive may deliver: dead letters the client judged retryable, and events left pending
# for a while (a run whose circuit breaker opened, or that crashed, sends none of them itself).
_REDRIVABLE = sa.text("""
SELECT count(*) AS letters, max(coalesce(d.failed_at, o.created_at)) AS last_change
FROM usage_outbox AS o LEFT JOIN dead_letters AS d USING (transaction_id)
WHERE o.status <> 'acknowledged'
  AND ((o.status = 'dead' AND d.resolved_at IS NULL AND d.retryable)
       OR (o.status = 'pending' AND o.created_at < now() - interval '10 minutes'))
""")


@dg.sensor(
    job=dlq_redrive_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Redrives what died of unavailability (retryable dead letters, and events a broken "
    "run left pending) once the billing API answers an authenticated request again.",
)
def redrive_when_healthy(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    billing_api: BillingApiResource,
) -> dg.RunRequest | dg.SkipReason:
    with warehouse.get_engine().begin() as conn:
        summary = conn.execute(_REDRIVABLE).one()
    if not summary.letters:
        return dg.SkipReason("nothing to redrive")
    if not billing_api.get_client().healthy():
        return dg.SkipReason(f"{summary.letters} events wait: billing API still unhealthy")
    return dg.RunRequest(run_key=f"redrive-{summary.last_change.isoformat()}-{summary.letters}")


# --- Late raw metrics ----------------------------------------------------------------------------

# The cursor is the PostgreSQL snapshot of the previous tick; a row is new when it was committed
# since (db.COMMITTED_SINCE), whenever its transaction began.
# (max() takes xid8 only from PostgreSQL 15 on; through bigint it works from 13.)
_ARRIVALS = """
SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
       count(*) AS rows, max(loaded_xid::text::bigint)::text AS last_xid
FROM raw_metrics
WHERE {committed_since}
GROUP BY 1
ORDER BY 1
"""
_ARRIVALS_SINCE_SNAPSHOT = sa.text(_ARRIVALS.format(committed_since=db.COMMITTED_SINCE))
# A cursor written before loaded_xid existed (a timestamp): one last pass by received_at.
_ARRIVALS_SINCE_TIME = sa.text(
    _ARRIVALS.format(committed_since="received_at > CAST(:since AS timestamptz)")
)
_REPORTED_MONTHS = sa.text(
    "SELECT DISTINCT partition_key FROM usage_outbox WHERE partition_key = ANY(:months)"
)
_SNAPSHOT_TEXT = re.compile(r"\d+:\d+:(\d+(,\d+)*)?")


@dataclass(frozen=True)
class Arrival:
    """Raw metrics committed since the last tick that occurred in `month`."""

    month: str
    rows: int
    last_xid: str  # the newest storing transaction: with the month, unique to this arrival


def late_data_requests(
    arrivals: Iterable[Arrival], reported: set[str], partitions: set[str]
) -> list[dg.RunRequest]:
    """Re-run the months that late rows changed and that were already reported; months never
    reported (or outside the partitions) are the schedules' business."""
    return [
        dg.RunRequest(
            run_key=f"late-{arrival.month}-{arrival.last_xid}",
            partition_key=arrival.month,
            tags={
                "usage_billing/trigger": "late_data",
                "usage_billing/late_rows": str(arrival.rows),
            },
        )
        for arrival in arrivals
        if arrival.month in reported and arrival.month in partitions
    ]


def is_snapshot_cursor(cursor: str) -> bool:
    """A `pg_current_snapshot()` text (`xmin:xmax:xip,…`), not a legacy received_at timestamp."""
    return _SNAPSHOT_TEXT.fullmatch(cursor) is not None


@dg.sensor(
    job=usage_billing_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-materializes already-reported months that raw metrics were committed for since "
    "the last tick (by transaction visibility, so a slow transaction is never skipped); the "
    "ledger sends only the delta.",
)
def late_raw_data(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    # One snapshot for the cursor and the rows: REPEATABLE READ.
    engine = warehouse.get_engine().execution_options(isolation_level="REPEATABLE READ")
    with engine.begin() as conn:
        snapshot = conn.execute(db.CURRENT_SNAPSHOT).scalar_one()
        if context.cursor is None:
            context.update_cursor(snapshot)
            yield dg.SkipReason("started watching raw metrics committed from now on")
            return
        query = (
            _ARRIVALS_SINCE_SNAPSHOT if is_snapshot_cursor(context.cursor) else _ARRIVALS_SINCE_TIME
        )
        arrivals = [
            Arrival(**row._mapping) for row in conn.execute(query, {"since": context.cursor})
        ]
        months = [arrival.month for arrival in arrivals]
        reported = set(conn.execute(_REPORTED_MONTHS, {"months": months}).scalars())
    partitions = set(monthly_partitions.get_partition_keys(current_time=periods.now()))
    yield from late_data_requests(arrivals, reported, partitions)
    context.update_cursor(snapshot)


# --- Alerts on failed checks -------------------------------------------------------------------


@dataclass(frozen=True)
class CheckState:
    """The latest execution of an asset check."""

    key: dg.AssetCheckKey
    status: str  # FAILED, SUCCEEDED or PLANNED (running)
    run_id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Incident:
    key: str
    title: str
    lines: list[str]


@dataclass
class IncidentChanges:
    open: list[Incident] = field(default_factory=list)  # notified once until resolved
    resolve: list[str] = field(default_factory=list)


def check_incident_key(key: dg.AssetCheckKey) -> str:
    return f"check:{key.asset_key.to_user_string()}:{key.name}"


def check_incidents(states: Iterable[CheckState]) -> IncidentChanges:
    """A failed check opens (or keeps open) its incident, with the run and its non-zero counts;
    a passing check resolves it; a check still running changes nothing."""
    changes = IncidentChanges()
    for state in states:
        incident = check_incident_key(state.key)
        if state.status == "FAILED":
            counts = [
                f"{name}: {value}"
                for name, value in state.metadata.items()
                if name.endswith("_count") and value
            ]
            title = (
                f"Usage billing check failed: {state.key.asset_key.to_user_string()} / "
                f"{state.key.name}"
            )
            changes.open.append(Incident(incident, title, [f"run: {state.run_id}", *counts]))
        elif state.status == "SUCCEEDED":
            changes.resolve.append(incident)
    return changes


def _check_states(
    instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey]
) -> list[CheckState]:
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(check_keys))
    states = []
    for key, record in latest.items():
        evaluation = record.event.dagster_event.event_specific_data if record.event else None
        metadata = getattr(evaluation, "metadata", None) or {}
        states.append(
            CheckState(
                key=key,
                status=record.status.value,
                run_id=record.run_id,
                metadata={name: value.value for name, value in metadata.items()},
            )
        )
    return states


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
        changes = check_incidents(_check_states(context.instance, check_keys))
        engine = warehouse.get_engine()
        for incident in changes.open:
            raise_incident(
                engine, alerts.get_client(), incident.key, incident.title, incident.lines
            )
        for key in changes.resolve:
            resolve_incident(engine, key)
        return dg.SkipReason(f"{len(changes.open)} failing checks")

    return _sensor


# --- Deliver the alerts runs recorded ------------------------------------------------------------


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts the alerts that runs recorded (usage spikes, commits at risk) to the alerts "
    "webhook, oldest first, each once. Runs only record them, so a webhook that fails fails "
    "this tick, never a month's run; the alert stays due and the next tick sends it.",
)
def deliver_alerts(warehouse: WarehouseResource, alerts: AlertsResource) -> dg.SkipReason:
    sent = deliver_due(warehouse.get_engine(), alerts.get_client())
    return dg.SkipReason(f"delivered {len(sent)} alerts" if sent else "no alerts due")
