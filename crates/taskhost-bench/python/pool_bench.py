#!/usr/bin/env python3
"""The Python contender: concurrent.futures.ThreadPoolExecutor on the taskhost-bench scenarios.

Run by taskhost-bench as a subprocess; prints one JSON object on stdout and nothing else there.
Times are taken with time.perf_counter_ns() inside this process, so interpreter start-up is not
counted. Every scenario mirrors the Rust one of the same name (see crates/taskhost-bench/README.md).

    pool_bench.py throughput --tasks N --reps R [--workers 2]
    pool_bench.py round-trip --tasks N --reps R
    pool_bench.py many-submitters --tasks N --reps R [--submitters 4]   (N tasks per submitter)
    pool_bench.py cold-start --reps R
    pool_bench.py memory --tasks N
    pool_bench.py idle --seconds S
"""

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait


def trivial(index):
    return (index * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF


def status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def tick_cpu_ns():
    """utime + stime of the whole process, from /proc/self/stat (clock ticks)."""
    with open("/proc/self/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def thread_run_ns():
    """Nanoseconds each live thread has run, by thread id, from /proc/self/task/*/schedstat."""
    run_ns = {}
    for thread_id in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{thread_id}/schedstat") as schedstat:
                run_ns[thread_id] = int(schedstat.read().split()[0])
        except OSError:
            pass  # the thread exited between listing and reading
    return run_ns


def run_batch(pool, count):
    futures = [pool.submit(trivial, index) for index in range(count)]
    for future in futures:
        future.result()


def throughput(args):
    per_task_ns = []
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        run_batch(pool, min(args.tasks, 1000))  # warm-up: start the workers
        for _ in range(args.reps):
            start = time.perf_counter_ns()
            run_batch(pool, args.tasks)
            per_task_ns.append((time.perf_counter_ns() - start) / args.tasks)
    return {"samples_ns": per_task_ns}


def round_trip(args):
    iteration_ns = []
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for index in range(min(args.tasks, 100)):  # warm-up
            pool.submit(trivial, index).result()
        for _ in range(args.reps):
            for index in range(args.tasks):
                start = time.perf_counter_ns()
                pool.submit(trivial, index).result()
                iteration_ns.append(time.perf_counter_ns() - start)
    return {"samples_ns": iteration_ns}


def many_submitters(args):
    per_task_ns = []
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        run_batch(pool, min(args.tasks, 1000))
        for _ in range(args.reps):
            barrier = threading.Barrier(args.submitters + 1)

            def submitter():
                barrier.wait()
                run_batch(pool, args.tasks)

            threads = [threading.Thread(target=submitter) for _ in range(args.submitters)]
            for thread in threads:
                thread.start()
            barrier.wait()
            start = time.perf_counter_ns()
            for thread in threads:
                thread.join()
            per_task_ns.append((time.perf_counter_ns() - start) / (args.tasks * args.submitters))
    return {"samples_ns": per_task_ns}


def cold_start(args):
    samples_ns = []
    for index in range(args.reps):
        start = time.perf_counter_ns()
        pool = ThreadPoolExecutor(max_workers=args.workers)
        pool.submit(trivial, index).result()
        samples_ns.append(time.perf_counter_ns() - start)
        pool.shutdown(wait=True)
    return {"samples_ns": samples_ns}


def memory(args):
    gate = threading.Event()
    started = threading.Semaphore(0)

    def blocker():
        started.release()
        gate.wait()

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        blockers = [pool.submit(blocker) for _ in range(args.workers)]
        for _ in range(args.workers):
            started.acquire()
        rss_before, hwm_before = status_kib("VmRSS"), status_kib("VmHWM")
        futures = [pool.submit(trivial, index) for index in range(args.tasks)]
        rss_after, hwm_after = status_kib("VmRSS"), status_kib("VmHWM")
        gate.set()
        wait(blockers + futures)
    return {
        "tasks": args.tasks,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "hwm_before_kib": hwm_before,
        "hwm_after_kib": hwm_after,
    }


def idle(args):
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        # Python starts a worker per submit until max_workers; make both exist.
        gate = threading.Barrier(args.workers)
        wait([pool.submit(gate.wait) for _ in range(args.workers)])
        time.sleep(0.05)
        threads_before, ticks_before = thread_run_ns(), tick_cpu_ns()
        time.sleep(args.seconds)
        threads_after, ticks_after = thread_run_ns(), tick_cpu_ns()
        threads = threading.active_count()
    cpu_ns = sum(
        max(0, run_ns - threads_before.get(thread_id, 0))
        for thread_id, run_ns in threads_after.items()
    )
    return {"cpu_ns": cpu_ns, "tick_cpu_ns": ticks_after - ticks_before, "threads": threads}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario",
        choices=["throughput", "round-trip", "many-submitters", "cold-start", "memory", "idle"],
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--submitters", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    scenario = {
        "throughput": throughput,
        "round-trip": round_trip,
        "many-submitters": many_submitters,
        "cold-start": cold_start,
        "memory": memory,
        "idle": idle,
    }[args.scenario]
    print(json.dumps(scenario(args)))


if __name__ == "__main__":
    main()
