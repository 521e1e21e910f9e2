"""Months, partitions and the pipeline clock: the one place that knows what time it is.

Partition keys are months written `YYYY-MM`; a month is the half-open UTC interval from its first
midnight to the next month's. `USAGE_BILLING_NOW` (ISO 8601 with an offset) pins the clock for
tests, backtests and replays.
"""

from __future__ import annotations

import datetime as dt
import re

from usage_billing import config

FIRST_MONTH = "2025-01"
"""The first partition: nothing before it is loaded, aggregated or billed."""

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class MonthError(ValueError):
    """A month argument that is malformed or outside the partitions; the message says which."""


def now() -> dt.datetime:
    """The pipeline clock: `USAGE_BILLING_NOW` when set, else the current UTC time."""
    return config.pinned_now() or dt.datetime.now(dt.UTC)


def parse_month(text: str) -> str:
    """`text` when it is a month written exactly `YYYY-MM`; MonthError otherwise."""
    if not _MONTH.fullmatch(text):
        raise MonthError(f"{text!r} is not a month written YYYY-MM, like 2025-01")
    return text


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """UTC [start, end) of a `YYYY-MM` month."""
    start = dt.datetime.strptime(parse_month(month), "%Y-%m").replace(tzinfo=dt.UTC)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def month_of(moment: dt.datetime) -> str:
    """The `YYYY-MM` month a moment falls in, in UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m")


def previous_month(moment: dt.datetime) -> str:
    """The month before the one `moment` falls in."""
    first = moment.astimezone(dt.UTC).replace(day=1)
    return month_of(first - dt.timedelta(days=1))


def months_between(first: str, last: str) -> list[str]:
    """Every month from `first` to `last`, both included."""
    months, cursor = [], month_bounds(first)[0]
    while month_of(cursor) <= last:
        months.append(month_of(cursor))
        cursor = month_bounds(month_of(cursor))[1]
    return months


def partition_months(moment: dt.datetime | None = None) -> list[str]:
    """The partitions as of `moment` (the clock by default): the first month to the current."""
    return months_between(FIRST_MONTH, month_of(moment or now()))


def check_partition(month: str, moment: dt.datetime | None = None) -> str:
    """`month` when it is a partition as of `moment`; MonthError saying why not otherwise."""
    current = month_of(moment or now())
    if parse_month(month) < FIRST_MONTH:
        raise MonthError(f"{month} is before the first partition, {FIRST_MONTH}")
    if month > current:
        raise MonthError(f"{month} has not started yet: the current month is {current}")
    return month


def day_start(moment: dt.datetime) -> dt.datetime:
    """Midnight UTC of the day `moment` falls in."""
    return dt.datetime.combine(moment.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
