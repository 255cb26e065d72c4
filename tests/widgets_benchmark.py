"""How long the widgets take to open, side by side: a TaskBrowser on a split of 3 tasks and on one of 100,000 (it must
not depend on the split's size), and a SessionStepper on a counter task with one call. Our server on uvicorn in a
thread, the sync client, no event loop (each call completes before the constructor or click returns).

    python tests/widgets_benchmark.py [--repeat 20]

Prints medians in milliseconds and the 100,000 : 3 ratio (measured in the same run, so a loaded machine affects both).
"""
from __future__ import annotations

import argparse, os, statistics, time

from openreward import OpenReward
from openreward.demo import serve_in_thread
from openreward.environments import Environment, Split, TextBlock, ToolOutput, tool
from openreward.examples import ENVIRONMENTS
from openreward.server import Server
from openreward.widgets import browse, play


class Big(Environment):
    "A split of 100,000 tasks."
    @classmethod
    def list_splits(cls): return [Split(name="train", type="train")]
    @classmethod
    def list_tasks(cls, split): return [{"id": i} for i in range(100_000)]
    def get_prompt(self): return [TextBlock(text="hi")]
    @tool
    def solve(self) -> ToolOutput:
        "Solve it."
        return ToolOutput(blocks=[TextBlock(text="ok")], reward=1.0, finished=True)


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with serve_in_thread(Server([*ENVIRONMENTS, Big]).app) as url, OpenReward() as client:
        small = client.environments.get("examples", variant="counter", base_url=url)
        big = client.environments.get("examples", variant="big", base_url=url)
        def open_browser(env): browse(env).close()
        def stepper():
            s = play(small.get_task("train", 0), small)
            s.call.click()
            s.close()
        rows = [("TaskBrowser, split of 3 tasks", median_ms(lambda: open_browser(small), args.repeat)),
                ("TaskBrowser, split of 100,000 tasks", median_ms(lambda: open_browser(big), args.repeat)),
                ("SessionStepper: open, one call, close", median_ms(stepper, args.repeat))]
    for name, ms in rows: print(f"{name:40s} {ms:8.1f} ms")
    print(f"{'100,000 : 3 tasks':40s} {rows[1][1] / rows[0][1]:8.2f} x")
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores shared)")


if __name__ == "__main__":
    main()
