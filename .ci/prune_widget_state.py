"""Keep in a notebook's stored widget state only the widgets its outputs show.

`jupyter execute` (nbclient) records every widget a kernel ever created, closed ones included (it never handles
`comm_close`), so a notebook whose lessons build and close many widgets stores them all. This drops every model
that no displayed widget reaches (through `IPY_MODEL_` references) and leaves the rest byte-for-byte as it was.
Idempotent. Usage, after executing:  python .ci/prune_widget_state.py nbs/10_widgets.ipynb [...]
(tests/test_widgets_kernel.py checks that every notebook's stored state is pruned.)
"""
import json, re, sys
from pathlib import Path

KEY = "application/vnd.jupyter.widget-state+json"
VIEW = "application/vnd.jupyter.widget-view+json"
REF = re.compile(r"IPY_MODEL_([\w-]+)")


def shown(nb: dict) -> list[str]:
    "Model ids of the widgets the notebook's outputs display."
    return [o["data"][VIEW]["model_id"] for c in nb["cells"] for o in c.get("outputs", [])
            if VIEW in o.get("data", {})]


def reachable(state: dict, roots: list[str]) -> set[str]:
    "Every model id `roots` reach through references in their state."
    seen, todo = set(), list(roots)
    while todo:
        m = todo.pop()
        if m in seen or m not in state: continue
        seen.add(m)
        todo += REF.findall(json.dumps(state[m].get("state", {})))
    return seen


def prune(nb: dict) -> int:
    "Drop unreachable models from `nb` in place; return how many were dropped."
    widgets = nb.get("metadata", {}).get("widgets", {}).get(KEY)
    if not widgets: return 0
    state = widgets["state"]
    keep = reachable(state, shown(nb))
    drop = [m for m in state if m not in keep]
    for m in drop: del state[m]
    if not state: del nb["metadata"]["widgets"]
    return len(drop)


if __name__ == "__main__":
    for p in map(Path, sys.argv[1:]):
        nb = json.loads(p.read_text())
        n = prune(nb)
        if n:
            p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        print(f"{p}: dropped {n} widget models no output shows")
