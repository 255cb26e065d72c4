"""The provider adapters against the reference's, on payloads in the shapes the providers document
(tests/fixtures/provider_payloads.json): the same events wherever the reference keeps everything, and exactly the
documented differences where it drops, mangles or refuses — for dict payloads and for SDK-style objects alike."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from conftest import FIXTURES, run_reference_script
from openreward.rollouts import (openai_completions_to_normalized, serialize_anthropic_message, serialize_gdm_message,
                                 serialize_openai_response_items)

PAYLOADS = json.loads((FIXTURES/"provider_payloads.json").read_text())
OURS = {"openai_completions": lambda m: openai_completions_to_normalized([m]), "openai_responses": serialize_openai_response_items,
        "anthropic": serialize_anthropic_message, "gemini": serialize_gdm_message}

# Where ours differs from the reference on purpose (the differences table of the rollouts page): case -> our events.
DIFFERENT = {
    ("openai_completions", "tool_empty"): [["tool_result", "", None, None, None, "call_1"]],  # reference: nothing (then IndexError)
    ("openai_completions", "developer"): [["system_message", "Answer in French.", None, None, None, None]],  # reference: ignored
    ("openai_completions", "assistant_with_reasoning"): [["reasoning", "Convert the answer.", None, None, None, None],
                                                         ["assistant_message", "Il fait 18°C.", None, None, None, None]],
    ("openai_responses", "input_image"): [["user_message", "What is this?", None, None, None, None],
                                          ["image", "https://example.com/cat.png", None, None, None, None]],  # reference: ValueError
    ("openai_responses", "web_search_call"): [["tool_call", '{"action":{"type":"search","query":"cafés"}}', None, None, "web_search", "ws_1"]],
    ("anthropic", "image"): [["image", "data:image/png;base64,iVBORw0KGgo=", None, None, None, None],
                             ["user_message", "Describe it.", None, None, None, None]],  # reference: ValueError
    ("gemini", "model_text"): [["assistant_message", "The sum is 5.", None, None, None, None]],  # reference: dropped
    ("gemini", "model_thought"): [["reasoning", "Use the add tool.", None, None, None, None]],  # reference: content_reference "None"
    ("gemini", "function_response_without_result"): [["tool_result", '{"output":5}', None, None, None, "fc2"]],  # reference: KeyError
}

def events(adapter: str, payload) -> list[list]:
    return [[e.type, e.content, e.content_reference, e.summary, e.name, e.call_id] for e in OURS[adapter](payload)]

PLAIN = {"input", "args", "arguments", "response"}  # the SDKs keep tool arguments and function responses as dicts

def as_object(value, key: str | None = None):
    "The payload as an SDK-style object: attributes instead of keys, all the way down (lists stay lists)."
    if isinstance(value, dict) and key not in PLAIN: return SimpleNamespace(**{k: as_object(v, k) for k, v in value.items()})
    if isinstance(value, list): return [as_object(v) for v in value]
    return value

@pytest.fixture(scope="module")
def reference(reference_python, tmp_path_factory):
    r = run_reference_script(reference_python, FIXTURES/"reference_serializers.py", str(FIXTURES/"provider_payloads.json"))
    return json.loads(r.stdout)

CASES = [(a, c) for a, cases in PAYLOADS.items() for c in cases]

@pytest.mark.parametrize("adapter,case", CASES, ids=[f"{a}-{c}" for a, c in CASES])
def test_same_as_reference_or_the_documented_difference(reference, adapter, case):
    ours, ref = events(adapter, PAYLOADS[adapter][case]), reference[adapter][case]
    if (adapter, case) in DIFFERENT:
        assert ours == DIFFERENT[adapter, case]
        assert ref != {"events": ours}, "listed as a difference, but the reference gives the same"
    else: assert {"events": ours} == ref

@pytest.mark.parametrize("adapter,case", CASES, ids=[f"{a}-{c}" for a, c in CASES])
def test_sdk_objects_give_the_same_events_as_dicts(adapter, case):
    assert events(adapter, as_object(PAYLOADS[adapter][case])) == events(adapter, PAYLOADS[adapter][case])

def test_every_tool_call_of_a_completion_is_logged(tmp_path):
    from openreward.rollouts import RolloutAPI
    api = RolloutAPI(store=str(tmp_path/"r.db"), upload=False)
    r = api.create("multi")
    r.log_openai_completions(PAYLOADS["openai_completions"]["assistant_two_tool_calls_and_text"])
    got = [(m.type, m.name, m.call_id) for m in r.read().messages]
    assert got == [("tool_call", "get_weather", "call_Pk0z"), ("tool_call", "get_weather", "call_EF14"), ("assistant_message", None, None)]
    api.close()
