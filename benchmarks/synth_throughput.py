"""Throughput of the online engine against a local OpenAI-compatible server with fixed latency.

Starts ``tests/fakes/openai_server.py`` in its own process (so that the server does not share the client's GIL),
then measures, in fresh child processes:

* ours: ``Engine`` in online mode at ``--concurrency`` (default 64) over ``--requests`` (default 2,000) distinct
  requests, with a fresh response store (every answer committed to SQLite before it is used);
* sequential: one ``openai.OpenAI().chat.completions.create`` after the other, how the authors' scripts call the
  API, over ``--sequential-requests`` (default 100; its rate does not depend on the count, and 2,000 would take
  more than 400 s at 200 ms each);
* memory: peak RSS and the peak of Python allocations (tracemalloc) of the engine at two request counts.

Prints requests/s of both, their ratio, and ours against the ideal ``concurrency / latency``.

    python benchmarks/synth_throughput.py [--requests 2000] [--concurrency 64] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER = REPO_ROOT / "tests" / "fakes" / "openai_server.py"
API_KEY_ENV = "SYNTH_BENCH_KEY"


def _requests(count: int) -> Iterator:
    from syntriever_hf.llm import ChatRequest

    for index in range(count):
        yield ChatRequest("gpt-4o-mini", ({"role": "user", "content": f"Benchmark question number {index}."},),
                          {"temperature": 0.7, "max_tokens": 64}, "bench/v1")


def _accept(completion) -> str:
    return completion.text


def child_online(base_url: str, count: int, concurrency: int, trace: bool) -> dict:
    from syntriever_hf.llm import ClientSettings, Engine, EngineSettings, ResponseStore

    settings = EngineSettings(client=ClientSettings(base_url=base_url, api_key_env=API_KEY_ENV, timeout=30),
                              concurrency=concurrency, show_progress=False)
    if trace:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as run_dir, ResponseStore(run_dir) as store:
        started = time.perf_counter()
        report = Engine(store, settings).run(_requests(count), _accept)
        elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    assert report.succeeded == count, report
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"requests": count, "seconds": elapsed, "rps": count / elapsed, "max_rss_mb": usage.ru_maxrss / 1024,
            "tracemalloc_peak_mb": peak / 2**20 if peak else None, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def child_sequential(base_url: str, count: int) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=os.environ[API_KEY_ENV])
    started = time.perf_counter()
    for request in _requests(count):
        answer = client.chat.completions.create(**request.body())
        assert answer.choices[0].message.content
    elapsed = time.perf_counter() - started
    return {"requests": count, "seconds": elapsed, "rps": count / elapsed}


def _run_child(*args: str) -> dict:
    env = {**os.environ, API_KEY_ENV: "sk-bench-not-a-secret"}
    done = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True,
                          check=True, cwd=REPO_ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start_server(latency: float) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, str(SERVER), "--latency", str(latency)], stdout=subprocess.PIPE,
                              text=True)
    line = server.stdout.readline().split()
    if line[:1] != ["PORT"]:
        server.kill()
        raise RuntimeError(f"the fake server did not start: {line}")
    return server, f"http://127.0.0.1:{line[1]}/v1"


def _report(args: argparse.Namespace, ours: dict, sequential: dict, small: dict, large: dict) -> None:
    ideal = args.concurrency / args.latency
    print(f"latency {args.latency * 1000:.0f} ms per request; concurrency {args.concurrency}; ideal {ideal:.0f} req/s")
    print(f"ours (online engine, store on): {ours['requests']} requests in {ours['seconds']:.2f} s = "
          f"{ours['rps']:.1f} req/s (client process CPU, imports included: {ours['cpu_seconds']:.1f} s)")
    print(f"sequential (openai client loop): {sequential['requests']} requests in {sequential['seconds']:.2f} s = "
          f"{sequential['rps']:.2f} req/s")
    print(f"ours / sequential: {ours['rps'] / sequential['rps']:.1f}x   (target >= 25x)")
    print(f"ours / ideal:      {ours['rps'] / ideal:.2f}    (target >= 0.7)")
    for row in (small, large):
        print(f"memory at {row['requests']:>5} requests: peak RSS {row['max_rss_mb']:.1f} MiB, "
              f"peak Python allocations {row['tracemalloc_peak_mb']:.2f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--sequential-requests", type=int, default=100)
    parser.add_argument("--memory-requests", type=int, nargs=2, default=(500, 2000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, base_url, count, *rest = args.child
        result = (child_sequential(base_url, int(count)) if kind == "sequential" else
                  child_online(base_url, int(count), int(rest[0]), trace=rest[1] == "trace"))
        print(json.dumps(result))
        return
    server, base_url = _start_server(args.latency)
    try:
        _run_child("online", base_url, "200", str(args.concurrency), "plain")  # warm-up (imports, page cache)
        ours = _run_child("online", base_url, str(args.requests), str(args.concurrency), "plain")
        sequential = _run_child("sequential", base_url, str(args.sequential_requests))
        small, large = (_run_child("online", base_url, str(n), str(args.concurrency), "trace")
                        for n in args.memory_requests)
    finally:
        server.kill()
        server.wait()
    _report(args, ours, sequential, small, large)


if __name__ == "__main__":
    main()
