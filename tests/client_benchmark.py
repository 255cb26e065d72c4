"""Client benchmark (not a test; pytest does not collect it):

    python tests/client_benchmark.py [--sessions 1000] [--calls 20] [--compare-sessions 100] [--compare-calls 20] [--httpx]

1. Scale: our AsyncOpenReward opens SESSIONS concurrent sessions from one process against our server (uvicorn
   subprocess on 127.0.0.1, serving the example environments) and makes CALLS tool calls in each; every call must
   succeed.
2. Client CPU per tool call, ours vs the reference client (openreward 0.1.167 in its own venv), side by side on
   the same server and the same load: process CPU time (all threads) of the client process during the tool-call
   phase, divided by the calls made. Each client runs in its own process, one after the other, REPEAT times
   (the median is reported).

With --httpx, a third row: our client with requests through httpx's own transport instead of the direct path of
`openreward.transport` (what the client cost before it).

The load: `Counter.increment` (a sync tool) on a task whose target is never reached, variant named explicitly
(no redirect). The machine's load average is printed before and after.
"""
from __future__ import annotations

import argparse, json, os, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import EXAMPLES_PY, SERVE_EXAMPLES, ensure_reference_venv, serve_subprocess, subprocess_env  # noqa: E402

WORKER = HERE/"fixtures"/"client_bench_worker.py"

def proc_cpu(pid: int) -> float:
    "CPU seconds (user+system) used so far by process `pid`."
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def run_worker(python: str, url: str, sessions: int, calls: int, server_pid: int, *extra: str) -> dict:
    s0, t0 = proc_cpu(server_pid), time.perf_counter()
    r = subprocess.run([python, str(WORKER), url, str(sessions), str(calls), *extra], capture_output=True, text=True,
                       timeout=1800, cwd="/tmp", env=subprocess_env())
    if r.returncode != 0: raise SystemExit(f"worker failed ({python}):\n{r.stderr[-4000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["server_cpu"], out["total_wall"] = proc_cpu(server_pid) - s0, time.perf_counter() - t0
    return out

def fmt(x: float, unit: str = "") -> str: return f"{x:.3g}{unit}"

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--compare-sessions", type=int, default=100)
    ap.add_argument("--compare-calls", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--httpx", action="store_true", help="also measure our client through httpx's own transport")
    args = ap.parse_args()
    ref_python = str(ensure_reference_venv())
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}", flush=True)
    with serve_subprocess(sys.executable, SERVE_EXAMPLES, str(EXAMPLES_PY), timeout=60) as (url, proc):
        if not args.skip_scale:
            print(f"\n== scale: {args.sessions} concurrent sessions x {args.calls} tool calls, our client, our server", flush=True)
            big = run_worker(sys.executable, url, args.sessions, args.calls, proc.pid)
            ph = big["phases"]
            print(f"sessions open: {big['sessions']}/{args.sessions}; calls ok: {big['calls']}/{args.sessions * args.calls}; "
                  f"errors: {big['n_errors']} {big['errors']}")
            print(f"wall: open {fmt(ph['open']['wall'], ' s')}, calls {fmt(ph['calls']['wall'], ' s')} "
                  f"({big['calls'] / ph['calls']['wall']:.0f} calls/s), close {fmt(ph['close']['wall'], ' s')}")
            print(f"client CPU: open {fmt(ph['open']['cpu'], ' s')}, calls {fmt(ph['calls']['cpu'], ' s')} "
                  f"({1e3 * ph['calls']['cpu'] / max(big['calls'], 1):.3f} ms per call), close {fmt(ph['close']['cpu'], ' s')}; "
                  f"server CPU {fmt(big['server_cpu'], ' s')}")
        print(f"\n== client CPU per tool call: {args.compare_sessions} sessions x {args.compare_calls} calls, same server, "
              f"median of {args.repeat}", flush=True)
        rows = {}
        clients = [("ours", sys.executable, ()), ("reference", ref_python, ())]
        if args.httpx: clients.append(("ours/httpx", sys.executable, ("httpx",)))
        for name, python, extra in clients:
            runs = [run_worker(python, url, args.compare_sessions, args.compare_calls, proc.pid, *extra) for _ in range(args.repeat)]
            for r in runs:
                if r["n_errors"]: raise SystemExit(f"{name}: errors {r['errors']}")
            per_call = [r["phases"]["calls"]["cpu"] / r["calls"] for r in runs]
            open_per = [r["phases"]["open"]["cpu"] / r["sessions"] for r in runs]
            rate = [r["calls"] / r["phases"]["calls"]["wall"] for r in runs]
            rows[name] = (statistics.median(per_call), statistics.median(open_per), statistics.median(rate),
                          statistics.median(r["server_cpu"] / r["calls"] for r in runs))
        print(f"{'client':<10} {'CPU/call':>10} {'CPU/session open':>17} {'calls/s':>9} {'server CPU/call':>16}")
        for name, (pc, po, rate, sc) in rows.items():
            print(f"{name:<10} {1e3 * pc:>8.3f}ms {1e3 * po:>15.3f}ms {rate:>9.0f} {1e3 * sc:>14.3f}ms")
        print(f"ours / reference CPU per call: {rows['ours'][0] / rows['reference'][0]:.2f}")
        if args.httpx: print(f"ours through httpx's transport / reference: {rows['ours/httpx'][0] / rows['reference'][0]:.2f}")
    print(f"\nload average after: {os.getloadavg()}")

if __name__ == "__main__":
    main()
