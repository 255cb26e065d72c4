"""The reference's public exceptions exist in ours at the same import path, with the same constructor signatures
and the same messages, so code that raises, catches or builds them (mocks, retry wrappers) runs unchanged."""
import inspect, json, textwrap

import pytest
from conftest import run_reference_script

# Builds each exception with the same arguments under either SDK and reports its class chain, str() and attributes.
PROBE = textwrap.dedent('''
    import inspect, json
    import openreward.api.errors as E
    classes = {n: c for n, c in vars(E).items() if inspect.isclass(c) and issubclass(c, Exception) and c.__module__.startswith("openreward")}
    def sig(c):  # None: the plain Exception constructor (any positional arguments)
        try: return [(p.name, p.kind.name, repr(p.default)) for p in inspect.signature(c).parameters.values()]
        except ValueError: return None
    sigs = {n: sig(c) for n, c in classes.items()}
    samples = {
        "ToolCallError": E.ToolCallError("not_found", "'nope' is not a valid tool"),
        "ToolCallError-kw": E.ToolCallError(reason="input_validation", detail="bad"),
        "SessionTerminatedError": E.SessionTerminatedError("server returned 410: Session deleted", sid="s1", kind="environment"),
        "HTTPStatusError": E.HTTPStatusError(404, "Not Found"),
        "HTTPStatusError-nobody": E.HTTPStatusError(500),
        "ToolFailed": E.ToolFailed("kaboom from tool"),
        "ScoreGroupFailed": E.ScoreGroupFailed("score_group returned 1 scores for 2 candidates"),
        "ScoreGroupUnsupported": E.ScoreGroupUnsupported("no score_group"),
        "TransportError": E.TransportError("x"),
        "OpenRewardError": E.OpenRewardError("x"),
    }
    out = {"sigs": sigs, "samples": {k: {"str": str(e), "attrs": {a: repr(v) for a, v in sorted(vars(e).items())},
                                         "isinstance": sorted(n for n, c in classes.items() if isinstance(e, c))}
                                     for k, e in samples.items()}}
    out["max_retries_errors"] = [repr(e) for e in E.MaxRetriesError("m", [TimeoutError("t")]).errors]
    print(json.dumps(out))
''')

def _probe() -> dict:
    ns: dict = {}
    import contextlib, io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): exec(PROBE, ns)
    return json.loads(buf.getvalue())

@pytest.fixture(scope="module")
def reference(reference_python, tmp_path_factory) -> dict:
    script = tmp_path_factory.mktemp("probe")/"probe_errors.py"
    script.write_text(PROBE)
    return json.loads(run_reference_script(reference_python, script).stdout)

def test_every_reference_exception_exists_with_its_signature(reference):
    ours = _probe()["sigs"]
    assert len(reference["sigs"]) >= 10
    for name, sig in reference["sigs"].items():
        assert name in ours, f"openreward.api.errors.{name} is missing"
        if sig is None:  # the reference takes Exception's free-form arguments: ours must accept none or a message
            import openreward.api.errors as E
            cls = getattr(E, name)
            assert str(cls("a message")) == "a message" and isinstance(cls(), cls), name
        else: assert ours[name] == sig, f"{name}: ours {ours[name]} != reference {sig}"

def test_messages_attributes_and_class_chains_match(reference):
    ours = _probe()
    reference_classes = set(reference["sigs"])
    for key, ref in reference["samples"].items():
        mine = ours["samples"][key]
        assert mine["str"] == ref["str"], key
        assert {k: v for k, v in mine["attrs"].items() if k in ref["attrs"]} == ref["attrs"], key
        # ours may add classes (e.g. SessionResponseError) but every reference base must still match
        assert [c for c in mine["isinstance"] if c in reference_classes] == ref["isinstance"], key
    assert ours["max_retries_errors"] == reference["max_retries_errors"]
