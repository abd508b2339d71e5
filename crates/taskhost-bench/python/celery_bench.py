"""Scenario 9's Celery contender: an echo task on a Redis broker and result backend.

The benchmark starts everything (redis-server and two workers running this module as their
app, `celery -A celery_bench worker`) and stops it by pid; run as a script, this module only
submits and times:

    python celery_bench.py --items N --reps R --workers W

waits until W workers answer a ping, runs a warm-up batch, then R batches of N `echo.delay`
calls collected with one `ResultSet.get` (Redis pub/sub), and prints
{"samples_ns": [...]}: nanoseconds per item, from the first submit to the last result.
The broker's URL is $CELERY_BENCH_URL.
"""

import argparse
import json
import os
import sys
import time

from celery import Celery
from celery.result import ResultSet

URL = os.environ.get("CELERY_BENCH_URL", "redis://127.0.0.1:6379/0")

app = Celery("celery_bench", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task
def echo(value):
    return value


def wait_for_workers(count, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if len(replies) >= count:
            return
    sys.exit(f"{count} Celery workers did not answer a ping within {timeout_s} s")


def batch(items, offset):
    """Submits `items` echo tasks, collects every result; elapsed ns."""
    started = time.perf_counter_ns()
    results = ResultSet([echo.delay({"n": offset + n}) for n in range(items)])
    values = results.get(timeout=600)
    elapsed = time.perf_counter_ns() - started
    expected = [{"n": offset + n} for n in range(items)]
    if values != expected:
        got = len(values) if isinstance(values, list) else values
        sys.exit(f"{got} results for {items} items, or not the items' echoes")
    results.forget()
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--reps", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    args = parser.parse_args()
    wait_for_workers(args.workers, 60)
    batch(min(args.items, 200), 0)
    samples = [batch(args.items, rep * args.items) / args.items for rep in range(args.reps)]
    print(json.dumps({"samples_ns": samples}))


if __name__ == "__main__":
    main()
