"""Our wire models serialise and validate exactly as the reference SDK's do.

The cases live in tests/fixtures/wire_cases.py; the same script runs under the reference's venv (in a subprocess,
outside this checkout) and under ours, and both outputs must be identical. The captured reference output that
00_types.ipynb checks against (tests/fixtures/reference_wire.json) must equal a fresh capture.
"""
import importlib.util, json

import pytest
from conftest import FIXTURES, run_reference_script

CASES_PY = FIXTURES/"wire_cases.py"

def _load_cases():
    spec = importlib.util.spec_from_file_location("wire_cases", CASES_PY)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

@pytest.fixture(scope="module")
def reference_outcomes(reference_python) -> dict:
    "What the reference's models do with every case, captured live."
    return json.loads(run_reference_script(reference_python, CASES_PY, "reference").stdout)

def test_cases_cover_every_model():
    "The case list exercises every wire model of openreward.types, valid and invalid."
    import openreward.types as t
    used = {name for _, name, _ in _load_cases().CASES}
    assert used >= {"TextBlock", "ImageBlock", "ToolOutput", "RunToolOutput", "RunToolSuccess", "RunToolError",
                    "ToolSpec", "TerminalToolSpec", "ListToolsOutput", "Split", "ToolCall", "CreateSession",
                    "SplitRequest", "TaskRequest", "TaskRangeRequest", "Message", "GroupCandidate", "GroupScore",
                    "ScoreGroupRequest", "ScoreGroupOutput"}
    assert all(hasattr(t, n) for n in used)

def test_ours_match_reference(reference_outcomes):
    ours = _load_cases().run("ours")
    assert sorted(ours) == sorted(reference_outcomes)
    mismatches = {k: (ours[k], reference_outcomes[k]) for k in reference_outcomes if ours[k] != reference_outcomes[k]}
    assert not mismatches
    # the comparison is not vacuous: both valid payloads and rejections are compared
    assert sum("json" in v for v in ours.values()) > 30 and sum("errors" in v for v in ours.values()) > 25

def test_stored_capture_is_current(reference_outcomes):
    "The capture that 00_types.ipynb checks against is what the reference does today."
    stored = json.loads((FIXTURES/"reference_wire.json").read_text())
    assert stored == reference_outcomes

SCHEMAS = '''
import importlib, json, sys
mod = importlib.import_module(sys.argv[1])
names = ["TextBlock", "ImageBlock", "ToolOutput", "Split", "ToolSpec", "TerminalToolSpec", "ListToolsOutput", "RunToolSuccess",
         "RunToolError", "RunToolOutput", "ToolCall", "CreateSession", "ReasoningBlock", "ToolCallBlock", "ToolResultBlock",
         "Message", "GroupCandidate", "GroupScore"]
print(json.dumps({n: getattr(mod, n).model_json_schema() for n in names}))
'''

def _without_descriptions(x):
    if isinstance(x, dict): return {k: _without_descriptions(v) for k, v in x.items() if k != "description"}
    if isinstance(x, list): return [_without_descriptions(v) for v in x]
    return x

def test_json_schemas_match_but_for_descriptions(reference_python, tmp_path):
    """A tool whose parameter model embeds one of these types publishes its JSON schema: fields, types, defaults,
    `required` and `additionalProperties` must be the reference's. Only the `description`s differ (they come from
    docstrings, and ours are our own)."""
    script = tmp_path/"schemas.py"; script.write_text(SCHEMAS)
    reference = json.loads(run_reference_script(reference_python, script, "openreward.environments.types").stdout)
    ns = {"__name__": "schemas"}
    import contextlib, io, sys
    buf, argv = io.StringIO(), sys.argv
    try:
        sys.argv = ["schemas.py", "openreward.types"]
        with contextlib.redirect_stdout(buf): exec(SCHEMAS, ns)
    finally: sys.argv = argv
    ours = json.loads(buf.getvalue())
    assert sorted(ours) == sorted(reference) and len(ours) == 18
    for name in reference: assert _without_descriptions(ours[name]) == _without_descriptions(reference[name]), name
