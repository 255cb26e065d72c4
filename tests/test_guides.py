"""The guides (nbs/guides/*.ipynb) keep the rules a tutorial lives by, checked on the notebooks as committed.

Each guide opens like every page (`# Title`, then a `> summary` line), exports nothing (a guide is documentation, not
a module: no `#| default_exp`, no `#| export`), was executed (its code cells have outputs, none of them an error),
and its stored outputs are the same every run: no loopback URL with a port the OS picked, no random id. Running them is
`nbdev_test`'s job (every guide is a notebook it runs).
"""
from __future__ import annotations

import json, re
from pathlib import Path

import pytest

GUIDES = sorted((Path(__file__).resolve().parent.parent/"nbs"/"guides").glob("*.ipynb"))
VOLATILE = {  # what must never be stored in a guide's output: it differs from run to run
    "a loopback URL with a port": re.compile(r"(?:127\.0\.0\.1|localhost):\d+"),
    "a random id": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b"),
    "a timing": re.compile(r"\b\d+\.\d+ ?(?:s|ms|seconds)\b"),
}


def source(cell: dict) -> str: return "".join(cell["source"])


def output_text(output: dict) -> str:
    data = output.get("data", {})
    return "".join("".join(v) if isinstance(v, list) else str(v) for k, v in data.items() if k.startswith("text/")) \
        + "".join(output.get("text", ""))


@pytest.mark.skipif(not (Path(__file__).resolve().parent.parent/"nbs").is_dir(),
                    reason="the notebooks are not here (the wheel check runs the tests beside the installed package)")
def test_there_are_guides():
    assert len(GUIDES) >= 5, [g.name for g in GUIDES]


@pytest.mark.parametrize("nb", GUIDES, ids=lambda p: p.stem)
def test_guide_keeps_the_rules(nb: Path):
    cells = json.loads(nb.read_text())["cells"]
    head = source(cells[0]).splitlines()
    assert cells[0]["cell_type"] == "markdown" and head[0].startswith("# ") and any(l.startswith("> ") for l in head), \
        f"{nb.name}: the first cell must be '# Title' and a '> summary' line"
    code = [c for c in cells if c["cell_type"] == "code"]
    exports = [source(c).splitlines()[0] for c in code if re.match(r"#\|\s*(default_exp|export)", source(c))]
    assert not exports, f"{nb.name}: a guide exports nothing, found {exports}"
    assert any(c["outputs"] for c in code), f"{nb.name}: no stored outputs; execute it (jupyter execute --inplace)"
    errors = [o.get("ename") for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{nb.name}: stored error outputs {errors}"
    fixed = "\n".join(source(c) for c in code)  # a port the guide names itself (run(port=8731)) is the same every run
    found = [f"{what}: {m.group(0)!r}" for c in code for o in c["outputs"] for what, rx in VOLATILE.items()
             for m in rx.finditer(output_text(o))
             if not (what == "a loopback URL with a port" and re.search(rf"port\s*=\s*{m.group(0).split(':')[1]}\b", fixed))]
    assert not found, f"{nb.name}: outputs that change from run to run: {found}"


def test_the_volatile_patterns_catch_what_they_are_for():
    samples = {"a loopback URL with a port": "http://127.0.0.1:41387/health",
               "a random id": "sid=b7cfc4e9-33af-472b-ac53-c78ed8827e70",
               "a timing": "9 episodes in 0.42 s"}
    for what, text in samples.items(): assert VOLATILE[what].search(text), what
    assert not any(rx.search("count=2 · reward 1.0 · 3 tasks of counter") for rx in VOLATILE.values())
