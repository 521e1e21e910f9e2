"""Backtest: month-end forecasts and spike notices on months of generated usage.

    python -m benchmarks.backtest [--customers 2000] [--seed 11] [--library-series 1000]

History: `usage_billing.synthetic.profiles` for every customer and product from 2025-01-01 to
2025-07-01 (weekly patterns, trends that turn, a slow wander, noise, labeled one-day spikes, new
and churned customers). Forecasts are made as of 00:00 UTC on the 5th, 12th, 20th and 26th of
each month from March to June, from complete days before that instant only; the model's
constants were set on the training months (March, April) of seed 1, and the figures that count
are the held-out test months (May, June) of another seed.

Forecasts are scored against the month's actual total per customer and billable metric:
  WAPE = sum |actual - forecast| / sum actual, per billable metric (quantities of different
  metrics are not comparable), then averaged over the metrics;
  coverage = share of series whose actual total falls inside the 80 % interval.
Baselines in the same run: straight-line (month to date / elapsed share of the month), seasonal
naive (month to date + the same remaining days four weeks earlier), and, on a sample of series,
statsforecast's AutoETS (season 7) when it is installed (`pip install statsforecast`).

Spikes: every day of the test months is judged against its baseline; precision and recall
against the generator's labels, on complete days and at 09:00 of the day (a day under way).

Speed (`--timing-customers N`): the model alone on N customers x 7 metrics (a month's forecast
and its spike pass), then, on a scratch database holding N profiled customers' raw metrics
(`--timing-scale` shrinks their volumes), the insights asset's steps: the as-of read (every
collector), the forecasts and the spikes.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from benchmarks._common import machine, scratch_database
from usage_billing import (
    db,
    forecast_model,
    forecasting,
    loader,
    pricing,
    projections,
    spikes,
    usage_history,
)
from usage_billing.synthetic import profiles as usage_profiles
from usage_billing.synthetic.plan import SeedPlan

START = dt.date(2025, 1, 1)
END = dt.date(2025, 7, 1)
TRAIN_MONTHS = ("2025-03", "2025-04")
TEST_MONTHS = ("2025-05", "2025-06")
AS_OF_DAYS = (5, 12, 20, 26)
MORNING = 9 / 24  # a day under way: judged at 09:00 UTC


@dataclass
class Dataset:
    metrics: np.ndarray  # (S,) billable metric of each series
    money: np.ndarray  # (S,) bool
    usage: np.ndarray  # (S, D) daily quantities from START
    spikes: np.ndarray  # (S, D) labeled spike days
    customers: np.ndarray | None = None  # (S,) the customer of each series

    def column(self, day: dt.date) -> int:
        return (day - START).days


def build(customers: int, seed: int) -> Dataset:
    found = usage_profiles.profiles(customers, START, END, seed)
    usage = np.zeros((len(found), (END - START).days))
    labels = np.zeros_like(usage, dtype=bool)
    for row, profile in enumerate(found):
        for col, day in enumerate(usage_profiles.daily_usage(profile, START, END)):
            usage[row, col] = float(day.quantity)
            labels[row, col] = day.spike
    metrics = np.array([p.billable_metric for p in found])
    money = np.array([p.money for p in found])
    return Dataset(metrics, money, usage, labels, np.array([p.customer_id for p in found]))


def month_days(month: str) -> tuple[dt.date, dt.date]:
    year, number = map(int, month.split("-"))
    first = dt.date(year, number, 1)
    return first, first + dt.timedelta(days=calendar.monthrange(year, number)[1])


@dataclass
class Forecasts:
    actual: np.ndarray
    model: np.ndarray
    low: np.ndarray
    high: np.ndarray
    straight_line: np.ndarray
    seasonal_naive: np.ndarray
    rows: np.ndarray  # which series have anything to forecast


def forecast_month(data: Dataset, month: str, day_of_month: int) -> Forecasts:
    first, end = month_days(month)
    as_of = first + dt.timedelta(days=day_of_month - 1)  # 00:00 of that day
    cut, month_start, month_end = data.column(as_of), data.column(first), data.column(end)
    history = data.usage[:, :cut]
    mtd = data.usage[:, month_start:cut].sum(axis=1)
    actual = data.usage[:, month_start:month_end].sum(axis=1)
    fitted = forecast_model.fit(history, as_of - dt.timedelta(days=1))
    remaining = [as_of + dt.timedelta(days=n) for n in range((end - as_of).days)]
    mean, variance = fitted.sum_forecast(remaining, np.ones(len(remaining)))
    low, high = forecast_model.interval(mean, variance)
    elapsed = (as_of - first).days / (end - first).days
    straight = mtd / elapsed
    seasonal = mtd + data.usage[:, cut - 28 : month_end - 28].sum(axis=1)
    rows = (history.sum(axis=1) + actual) > 0
    return Forecasts(actual, mtd + mean, mtd + low, mtd + high, straight, seasonal, rows)


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.abs(actual - forecast).sum() / max(actual.sum(), 1e-12))


def per_metric_wape(data: Dataset, f: Forecasts, forecast: np.ndarray) -> dict[str, float]:
    return {
        metric: wape(f.actual[mask], forecast[mask])
        for metric in sorted(set(data.metrics))
        if (mask := f.rows & (data.metrics == metric)).any()
    }


def library_forecasts(
    data: Dataset, month: str, day_of_month: int, rows: np.ndarray
) -> np.ndarray | None:
    """statsforecast AutoETS (season 7) month-end forecasts for `rows`, None when not installed."""
    try:
        import pandas as pd
        from statsforecast import StatsForecast
        from statsforecast.models import AutoETS
    except ImportError:
        return None
    first, end = month_days(month)
    as_of = first + dt.timedelta(days=day_of_month - 1)
    cut, month_start = data.column(as_of), data.column(first)
    window = data.usage[rows, max(0, cut - forecast_model.WEEKLY_DAYS) : cut]
    dates = pd.date_range(end=as_of - dt.timedelta(days=1), periods=window.shape[1], freq="D")
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(window.shape[0]), window.shape[1]),
            "ds": np.tile(dates, window.shape[0]),
            "y": window.ravel(),
        }
    )
    horizon = (end - as_of).days
    model = StatsForecast(models=[AutoETS(season_length=7)], freq="D", n_jobs=1)
    predicted = model.forecast(df=frame, h=horizon)
    sums = predicted.groupby("unique_id")["AutoETS"].apply(lambda s: s.clip(lower=0).sum())
    mtd = data.usage[rows, month_start:cut].sum(axis=1)
    return mtd + sums.reindex(np.arange(window.shape[0])).fillna(0).to_numpy()


def forecast_table(data: Dataset, months: tuple[str, ...], library_series: int) -> list[dict]:
    lines = []
    rng = np.random.default_rng(0)
    for day in AS_OF_DAYS:
        scores: dict[str, list[float]] = defaultdict(list)
        metric_scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        library_scores: list[tuple[float, float]] = []
        for month in months:
            f = forecast_month(data, month, day)
            for name, values in (
                ("model", f.model),
                ("straight_line", f.straight_line),
                ("seasonal_naive", f.seasonal_naive),
            ):
                by_metric = per_metric_wape(data, f, values)
                scores[name].append(float(np.mean(list(by_metric.values()))))
                for metric, value in by_metric.items():
                    metric_scores[metric][name].append(value)
            covered = (f.low <= f.actual + 1e-9) & (f.actual <= f.high + 1e-9)
            scores["coverage"].append(float(covered[f.rows].mean()))
            if library_series:
                candidates = np.flatnonzero(f.rows)
                sample = np.zeros_like(f.rows)
                sample[rng.choice(candidates, min(library_series, len(candidates)), False)] = True
                started = time.perf_counter()
                predicted = library_forecasts(data, month, day, sample)
                if predicted is not None:
                    sub = Forecasts(
                        f.actual[sample],
                        f.model[sample],
                        f.low[sample],
                        f.high[sample],
                        f.straight_line[sample],
                        f.seasonal_naive[sample],
                        np.ones(sample.sum(), dtype=bool),
                    )
                    sub_data = Dataset(
                        data.metrics[sample], data.money[sample], data.usage, data.spikes
                    )
                    library = np.mean(list(per_metric_wape(sub_data, sub, predicted).values()))
                    ours = np.mean(list(per_metric_wape(sub_data, sub, sub.model).values()))
                    library_scores.append((float(library), float(ours)))
                    scores["library_seconds"].append(time.perf_counter() - started)
        line = {"day": day, **{k: float(np.mean(v)) for k, v in scores.items()}}
        line["per_metric"] = {
            metric: {name: float(np.mean(v)) for name, v in values.items()}
            for metric, values in metric_scores.items()
        }
        if library_scores:
            line["library"] = float(np.mean([s[0] for s in library_scores]))
            line["model_on_library_sample"] = float(np.mean([s[1] for s in library_scores]))
        lines.append(line)
    return lines


def invoice_table(data: Dataset, months: tuple[str, ...]) -> list[dict]:
    """The projected invoice total per customer (each metric's forecast priced with the shipped
    rate card, summed; the interval the sum of the priced bounds) against the month's actual
    bill, next to the straight line of the bill to date (what billing tools project) and the
    straight line of each metric's quantity, priced. Floats: a benchmark, not an invoice."""
    card = pricing.load_rate_card()
    assert data.customers is not None
    _, owner = np.unique(data.customers, return_inverse=True)

    def bills(quantities: np.ndarray) -> np.ndarray:
        amounts = np.zeros(len(quantities))
        for metric in set(data.metrics):
            mask = data.metrics == metric
            amounts[mask] = projections.float_amounts(card.prices[metric], quantities[mask])
        return np.bincount(owner, weights=amounts)

    lines = []
    for day in AS_OF_DAYS:
        scores: dict[str, list[float]] = defaultdict(list)
        for month in months:
            f = forecast_month(data, month, day)
            first, end = month_days(month)
            elapsed = (day - 1) / (end - first).days
            cut = data.column(first + dt.timedelta(days=day - 1))
            mtd = data.usage[:, data.column(first) : cut].sum(axis=1)
            actual, projected = bills(f.actual), bills(f.model)
            low, high = bills(f.low), bills(f.high)
            active = np.bincount(owner, weights=f.rows.astype(float)) > 0
            for name, values in (
                ("model", projected),
                ("bill_straight_line", bills(mtd) / elapsed),
                ("quantity_straight_line", bills(f.straight_line)),
            ):
                scores[name].append(wape(actual[active], values[active]))
            inside = (low <= actual + 0.005) & (actual <= high + 0.005)
            scores["coverage"].append(float(inside[active].mean()))
            width = (high - low)[active] / np.maximum(projected[active], 1e-9)
            scores["median_width"].append(float(np.median(width)))
        lines.append({"day": day, **{k: float(np.mean(v)) for k, v in scores.items()}})
    return lines


def spike_scores(data: Dataset, months: tuple[str, ...]) -> dict[str, float]:
    counts: dict[str, int] = defaultdict(int)
    rng = np.random.default_rng(1)
    for month in months:
        first, end = month_days(month)
        day = first
        while day < end:
            col = data.column(day)
            history = data.usage[:, :col]
            observed = data.usage[:, col]
            labels = data.spikes[:, col]
            whole, _ = spikes.detect(history, day, observed, 1.0)
            morning_seen, arrivals = _by_morning(rng, data, col)
            morning, _ = spikes.detect(history, day, morning_seen, MORNING, arrivals)
            for name, flags in (("day", whole), ("morning", morning)):
                counts[f"{name}_tp"] += int((flags & labels).sum())
                counts[f"{name}_fp"] += int((flags & ~labels).sum())
                counts[f"{name}_fn"] += int((~flags & labels).sum())
            day += dt.timedelta(days=1)
    result: dict[str, float] = {}
    for name in ("day", "morning"):
        tp, fp, fn = counts[f"{name}_tp"], counts[f"{name}_fp"], counts[f"{name}_fn"]
        result[f"{name}_precision"] = tp / max(tp + fp, 1)
        result[f"{name}_recall"] = tp / max(tp + fn, 1)
        result[f"{name}_labeled"] = tp + fn
        result[f"{name}_flagged"] = tp + fp
    return result


def _by_morning(
    rng: np.random.Generator, data: Dataset, column: int
) -> tuple[np.ndarray, np.ndarray]:
    """What of each day's usage has arrived by 09:00, and in how many raw rows: the day's rows
    (`profiles.arrival_parts`) arrive independently and evenly over the day."""
    quantity = data.usage[:, column]
    parts = np.array(
        [usage_profiles.arrival_parts(m, q) for m, q in zip(data.metrics, quantity, strict=True)]
    )
    arrived = rng.binomial(parts, MORNING)
    return quantity * arrived / np.maximum(parts, 1), arrived


def timing_model(customers: int) -> dict[str, float]:
    """Seconds for the model alone: fit and forecast a month, and the month's spike pass, for
    every customer x billable metric (random weekly-seasonal series, 84 days)."""
    rng = np.random.default_rng(0)
    series = customers * len(usage_profiles.METRICS)
    days = forecast_model.WEEKLY_DAYS + 28
    weekly = np.tile(usage_profiles.WEEKLY_SHAPES["business"], days // 7 + 1)[:days]
    levels = rng.lognormal(3, 1.2, (series, 1))
    usage = rng.poisson(levels * weekly[None, :] * rng.gamma(20, 1 / 20, (series, days)))
    usage = usage.astype(float)
    as_of = dt.date(2025, 3, 12)
    history = usage[:, : days - 20]
    rest = [as_of + dt.timedelta(days=n) for n in range(20)]
    started = time.perf_counter()
    fitted = forecast_model.fit(history, as_of - dt.timedelta(days=1))
    mean, variance = fitted.sum_forecast(rest, np.ones(len(rest)))
    forecast_model.interval(mean, variance)
    forecast_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for n in range(11):  # the month's days so far, each against its own baseline
        column = days - 31 + n
        day = as_of - dt.timedelta(days=11 - n)
        spikes.detect(usage[:, max(0, column - 56) : column], day, usage[:, column], 1.0)
    return {"series": series, "forecast": forecast_seconds, "spikes": time.perf_counter() - started}


def timing_database(customers: int, scale: float, seed: int) -> dict[str, float]:
    """Seconds for `forecasting.forecast_month` and `spikes.month_spikes` on a scratch database
    with `customers` profiled customers' raw metrics (January to 12 March)."""

    as_of = dt.datetime(2025, 3, 12, 9, tzinfo=dt.UTC)
    found = usage_profiles.profiles(customers, START, dt.date(2025, 4, 1), seed, scale)
    plan = SeedPlan(
        "timing",
        (),
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        as_of + dt.timedelta(days=1),
        as_of,
        seed,
    )
    with scratch_database() as url:
        engine = db.create_engine(url)
        started = time.perf_counter()
        lines = (json.dumps(d) for p in found for d in usage_profiles.raw_documents(plan, p))
        loaded = loader.load_lines(engine, lines, source="timing").loaded
        load_seconds = time.perf_counter() - started
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE raw_metrics")
        started = time.perf_counter()
        histories, _ = usage_history.read_month(engine, "2025-03", as_of)
        read_seconds = time.perf_counter() - started
        started = time.perf_counter()
        forecasts = forecasting.forecast_histories(histories, "2025-03", as_of)
        forecast_seconds = time.perf_counter() - started
        started = time.perf_counter()
        found_spikes = spikes.find_spikes(histories, "2025-03", as_of)
        spike_seconds = time.perf_counter() - started
        engine.dispose()
    return {
        "raw_rows": loaded,
        "load": load_seconds,
        "read": read_seconds,
        "forecasts": len(forecasts),
        "forecast": forecast_seconds,
        "spikes_found": len(found_spikes),
        "spikes": spike_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--months", choices=("test", "train"), default="test")
    parser.add_argument("--library-series", type=int, default=300)
    parser.add_argument("--timing-customers", type=int, default=0)
    parser.add_argument("--timing-scale", type=float, default=0.05)
    parser.add_argument(
        "--invoices", action="store_true", help="only the projected invoice totals' table"
    )
    args = parser.parse_args()
    if args.timing_customers:
        print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
        model = timing_model(args.timing_customers)
        print(
            f"model alone, {model['series']:,} series: forecast {model['forecast']:.2f} s, "
            f"spike pass over 11 days {model['spikes']:.2f} s"
        )
        end_to_end = timing_database(args.timing_customers, args.timing_scale, args.seed)
        print(
            f"database: {end_to_end['raw_rows']:,} raw rows loaded in {end_to_end['load']:.0f} s; "
            f"as-of read (every collector, 8 weeks + the month) {end_to_end['read']:.1f} s; "
            f"forecasts {end_to_end['forecast']:.1f} s ({end_to_end['forecasts']:,}), "
            f"spikes {end_to_end['spikes']:.1f} s ({end_to_end['spikes_found']} found); "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        return
    months = TEST_MONTHS if args.months == "test" else TRAIN_MONTHS
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    data = build(args.customers, args.seed)
    print(
        f"{data.usage.shape[0]} series ({args.customers} customers, seed {args.seed}), "
        f"{data.usage.shape[1]} days, {int(data.spikes.sum())} labeled spike days; "
        f"generated in {time.perf_counter() - started:.1f} s; months {', '.join(months)}"
    )
    if args.invoices:
        print_invoice_table(invoice_table(data, months))
        print(f"\ntotal time {time.perf_counter() - started:.1f} s")
        return
    lines = forecast_table(data, months, args.library_series)
    print(
        "\n| as of | model WAPE | straight-line | seasonal naive | model / better baseline "
        "| 80 % coverage | AutoETS (sample) | model (same sample) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for line in lines:
        better = min(line["straight_line"], line["seasonal_naive"])
        library = f"{line['library']:.3f}" if "library" in line else "n/a"
        ours = f"{line['model_on_library_sample']:.3f}" if "library" in line else "n/a"
        print(
            f"| day {line['day']} | {line['model']:.3f} | {line['straight_line']:.3f} | "
            f"{line['seasonal_naive']:.3f} | {line['model'] / better:.2f} | "
            f"{line['coverage']:.2f} | {library} | {ours} |"
        )
    twelfth = next(line for line in lines if line["day"] == 12)
    print("\nper billable metric, as of the 12th (model / straight-line / seasonal naive):")
    for metric, values in sorted(twelfth["per_metric"].items()):
        print(
            f"  {metric:<34} {values['model']:.3f} / {values['straight_line']:.3f} / "
            f"{values['seasonal_naive']:.3f}"
        )
    if "library_seconds" in twelfth:
        print(f"AutoETS time per as-of point: {twelfth['library_seconds']:.1f} s")
    scores = spike_scores(data, months)
    print("\n| spikes | labeled | flagged | precision | recall |")
    print("|---|---:|---:|---:|---:|")
    for name, label in (("day", "complete days"), ("morning", "day under way, at 09:00")):
        print(
            f"| {label} | {scores[f'{name}_labeled']} | {scores[f'{name}_flagged']} | "
            f"{scores[f'{name}_precision']:.3f} | {scores[f'{name}_recall']:.3f} |"
        )
    print(
        f"\ntotal time {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )


def print_invoice_table(lines: list[dict]) -> None:
    print(
        "\n| as of | projected invoice WAPE | straight line of the bill | straight line of each "
        "quantity, priced | model / better baseline | 80 % coverage | median width |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for line in lines:
        better = min(line["bill_straight_line"], line["quantity_straight_line"])
        print(
            f"| day {line['day']} | {line['model']:.3f} | {line['bill_straight_line']:.3f} | "
            f"{line['quantity_straight_line']:.3f} | {line['model'] / better:.2f} | "
            f"{line['coverage']:.2f} | {line['median_width']:.1%} |"
        )


if __name__ == "__main__":
    main()
