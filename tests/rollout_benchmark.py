"""Rollout logging throughput and CPU per event: ours (local store only, and with upload) next to the reference client.

Not a timed test: run it by hand, `python tests/rollout_benchmark.py [--events N]`. Every figure comes from one
worker process per row that logs N user messages to one rollout through the public API (`client.rollout.create`,
`Rollout.log`) and then closes the API, which for the uploading rows waits until a fake platform (its own process,
on 127.0.0.1) has every event. Columns:
  log ev/s      events per second of the caller's `log()` loop (what an agent loop feels)
  done ev/s     events per second until `close()` returned (everything durable, and uploaded where uploading)
  caller µs/ev  CPU of the calling thread per event
  bg µs/ev      CPU of everything else in the process per event (the writer/uploader threads; the reference's worker)
"""
from __future__ import annotations

import argparse, json, os, subprocess, sys, tempfile, textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import REFERENCE_VENV, free_port, subprocess_env  # noqa: E402

WORKER = textwrap.dedent("""
    import json, sys, threading, time
    from openreward import OpenReward, UserMessage
    n = int(sys.argv[1])
    client = OpenReward(api_key="sk-bench", base_url="https://web.example")
    api = client.rollout
    api.shutdown_timeout = 600
    r = api.create("bench", rollout_name="one")
    c0, p0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
    for i in range(n): r.log(UserMessage(f"message number {i} of the benchmark"), reward=0.5)
    t_log, c_log = time.perf_counter() - t0, time.thread_time() - c0
    api.close()
    t_done, p_done = time.perf_counter() - t0, time.process_time() - p0
    print(json.dumps({"log": t_log, "done": t_done, "caller_cpu": c_log, "total_cpu": p_done}))
""")

def run(python: str, n: int, env: dict[str, str], tmp: str) -> dict:
    script = Path(tmp)/"worker.py"; script.write_text(WORKER)
    r = subprocess.run([python, str(script), str(n)], capture_output=True, text=True, cwd=tmp, env=subprocess_env(**env), timeout=1800)
    if r.returncode: raise SystemExit(f"worker failed under {python}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000, help="events per row")
    ap.add_argument("--reference-python", default=str(REFERENCE_VENV/"bin"/"python"), help="the reference venv's python")
    args = ap.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory(prefix="orw-rollout-bench-") as tmp:
        port = free_port()
        log = Path(tmp)/"requests.jsonl"
        platform = subprocess.Popen([sys.executable, str(HERE/"fixtures"/"fake_platform.py"), "127.0.0.1", str(port), str(log)],
                                    env=subprocess_env())
        try:
            import time, httpx
            for _ in range(200):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200: break
                except httpx.HTTPError: time.sleep(0.05)
            api = {"OPENREWARD_API_URL": f"http://127.0.0.1:{port}"}
            rows = [("ours, local store only", sys.executable, api | {"OPENREWARD_ROLLOUT_UPLOAD": "0", "OPENREWARD_ROLLOUTS_DB": f"{tmp}/a.db"}),
                    ("ours, store + upload", sys.executable, api | {"OPENREWARD_ROLLOUTS_DB": f"{tmp}/b.db"})]
            if Path(args.reference_python).exists(): rows.append(("reference (upload only)", args.reference_python, api))
            else: print(f"(no reference venv at {args.reference_python}: its row is left out)")
            print(f"{n} events per row; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
            print(f"{'':26} {'log ev/s':>10} {'done ev/s':>10} {'caller µs/ev':>13} {'bg µs/ev':>9}")
            for name, python, env in rows:
                m = run(python, n, env, tmp)
                print(f"{name:26} {n / m['log']:>10.0f} {n / m['done']:>10.0f} {1e6 * m['caller_cpu'] / n:>13.1f} "
                      f"{1e6 * (m['total_cpu'] - m['caller_cpu']) / n:>9.1f}")
            got = sum(len(json.loads(__import__('base64').b64decode(json.loads(l)["body"]))["events"])
                      for l in log.read_text().splitlines() if '"/v1/rollouts"' in l)
            print(f"the fake platform received {got} events in all (expected {n * (len(rows) - 1) + len(rows) - 1})")
        finally:
            platform.terminate(); platform.wait(10)

if __name__ == "__main__":
    main()
