"""The eval harness's own overhead: episodes/s and client CPU per tool call for many concurrent episodes.

Not a timed test: run it by hand, `python tests/agents_benchmark.py [--episodes 1000] [--concurrency 1000]`. The example
environments (our server) and the stub model (tests/test_agents.py) each run in their own process on 127.0.0.1, so the CPU
figure is the harness's alone: `run_eval` with a `ToolAgent` over `OpenAIChat`, the sessions, and the rollout store's
writer. Each counter episode is one model turn with two parallel tool calls; the table also shows `uptime` load, since the
machine may be shared.
"""
from __future__ import annotations

import argparse, os, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import EXAMPLES_PY, SERVE_EXAMPLES, serve_subprocess  # noqa: E402

from openreward.agents import OpenAIChat, ToolAgent, run_eval  # noqa: E402

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=1000, help="episodes in all (the counter's 4 tasks, repeated)")
    ap.add_argument("--concurrency", type=int, default=1000, help="episodes at a time")
    a = ap.parse_args()
    repeats = max(1, a.episodes // 4)
    with serve_subprocess(sys.executable, SERVE_EXAMPLES, str(EXAMPLES_PY)) as (env_url, _), \
         serve_subprocess(sys.executable, HERE/"fixtures"/"serve_stub_model.py") as (model_url, _), \
         tempfile.TemporaryDirectory() as tmp:
        agent = ToolAgent(OpenAIChat("solver", base_url=model_url + "/v1", api_key="bench", max_retries=8), max_turns=4)
        c0, t0 = time.process_time(), time.perf_counter()
        res = run_eval(env_url, agent, variants=["counter"], repeats=repeats, concurrency=a.concurrency,
                       store=Path(tmp)/"r.db", run_name="bench", progress=False)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    calls = sum(e.tool_calls for e in res.episodes)
    errors = sum(e.error is not None for e in res.episodes)
    print(f"load (uptime): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'episodes':>9} {'conc':>5} {'wall s':>7} {'episodes/s':>11} {'tool calls':>11} {'client CPU ms/call':>19} {'errors':>7}")
    print(f"{len(res.episodes):>9} {a.concurrency:>5} {wall:>7.2f} {len(res.episodes) / wall:>11.1f} {calls:>11} "
          f"{1000 * cpu / max(calls, 1):>19.2f} {errors:>7}")
    print(res.table())

if __name__ == "__main__":
    main()
