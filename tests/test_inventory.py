"""Every import path and name of the reference SDK exists in ours, or is declined here with its reason.

`tests/inventory_reference.py` describes an `openreward` package's surface (modules, names, class members,
parameter names). The stored description of the reference (openreward 0.1.167,
`tests/fixtures/reference_inventory.json`) is compared with ours, made fresh in a subprocess. A reference module,
name, class member or keyword parameter missing from ours fails the test unless `ALLOW` below declines it. An
entry of `ALLOW` that ours now provides fails too ("delete the entry"), so the list never outlives the gaps.
With the reference venv at hand, the stored description is also checked against a fresh one.

Keys of `ALLOW`: `"module"` (the whole module, and all its names), `"module:name"`, `"module:Class.member"`,
`"module:callable(param)"` for one keyword parameter, and `"module:Class()"` for all of a constructor's.
"""
from __future__ import annotations

import json, subprocess, sys, tempfile
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env

INVENTORY = REPO/"tests"/"inventory_reference.py"
SNAPSHOT = REPO/"tests"/"fixtures"/"reference_inventory.json"

FROM_BRANCHES: dict[str, str] = {}  # names other issues were building on their branches: all merged

# -------------------------------------------------------------------------------------------------------------------
# Declined: what ours does not offer at the reference's path, and why.
# -------------------------------------------------------------------------------------------------------------------
_CLI = "the `orwd` command and its scaffolding templates are issue #10; the reference's `openreward` CLI module is not importable API"
_AIOHTTP = ("the reference's aiohttp transport internals (they take an aiohttp.ClientSession); ours is httpx and "
            "openreward.transport, and no consumer we know imports them")
_JUDGING = ("LLM-as-judge helpers and their chat backends: they call hosted model APIs; agents and evaluation "
            "are issue #12, which decides what ours offers")
_WEB = ("client and tools of the hosted web search/fetch service (needs the platform's web service; the web "
        "toolset of #9 is where ours reaches it)")
_SERVER_INTERNALS = ("internals of the reference's server (middlewares, metrics, SSE task registry, logging set-up); "
                     "our server is built differently (openreward.server) and offers the same protocol")
_BUILT_BY_CLIENT = ("a constructor the client calls, not user code (handles come from client.environments.get and "
                    "env.session); ours takes its I/O-free core and its shell")

_ROLLOUT_WORKER = ("the reference's rollout upload worker: its queue event dataclasses, background thread, request "
                   "helper and the Rollout constructor's private plumbing (`_in`, `_loop`, `send_loop_config`, "
                   "`web_base_url`); ours writes events to the local store and uploads from it "
                   "(openreward.rollout_store), so these have no counterpart")
_ROLLOUT_REEXPORTS = ("names the reference's modules happen to import from elsewhere (its client module imports the "
                      "rollout types; its serializer modules import NormalizedType and name locals at module level); "
                      "ours offers each at `openreward`, `openreward.models` or `openreward.api.rollouts.serializers`, "
                      "and our client imports the rollout module lazily, so it cannot re-export them")

_SANDBOX_CLIENT = ("the hosted sandbox's aiohttp.ClientSession (the reference's transport); ours has none: the hosted "
                   "backend's requests go through openreward.client_io (httpx and our transport), and the local and "
                   "docker backends make no HTTP requests at all")
_VALIDATOR = "a pydantic validator's method name; ours enforces the same rule (reserved sidecar names) in its own validator"

_TOOLSET_OFFICE = ("the office-document toolsets (Excel, PDF, Word, PowerPoint) are out of scope for #9 (its docs say so): they need document libraries and converters this package does not depend on")
_TOOLSET_WEB = ("the reference's hosted web-service client behind the web/backsearch toolsets (its config object, snippet flag, env hooks and request helpers); ours takes a pluggable SearchBackend (openreward.toolsets.web), so these have no counterpart; the tools' names, descriptions and schemas are identical")
_TOOLSET_INTERNALS = ("module-level internals of the reference's toolset modules (description constants, parameter models, helpers, names they import): ours keeps the descriptions in openreward/toolsets/surface.json and its own models; the tool listings are byte-identical (tests/test_toolsets_interop.py)")

DECLINED: dict[str, str] = {
    # toolsets (#9): the office toolsets, the hosted web client, and module internals
    "openreward.environments._sandbox_tools": _TOOLSET_INTERNALS,
    "openreward.toolsets._web_common": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:BackSearchToolset(config)": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:FETCH_DESCRIPTION": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:MIN_SEARCH_QUERY_LENGTH": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:SEARCH_DESCRIPTION": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:ToolOutput": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:Toolset": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:WebFetchParams": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:WebSearchParams": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:WebServiceConfig": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:resolve_as_of": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:run_fetch": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:run_search": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:to_tool_output": _TOOLSET_WEB,
    "openreward.toolsets.backsearch:tool": _TOOLSET_WEB,
    "openreward.toolsets.claude_code:BASH_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.claude_code:EDIT_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.claude_code:GLOB_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.claude_code:GREP_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.claude_code:READ_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.claude_code:TODO_WRITE_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.claude_code:TextBlock": _TOOLSET_INTERNALS,
    "openreward.toolsets.claude_code:WRITE_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.cli:TextBlock": _TOOLSET_INTERNALS,
    "openreward.toolsets.codex:BASH_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.codex:TextBlock": _TOOLSET_INTERNALS,
    "openreward.toolsets.excel": _TOOLSET_OFFICE,
    "openreward.toolsets.gemini_cli:GLOB_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:GREP_SEARCH_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:LIST_DIRECTORY_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:READ_FILE_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:REPLACE_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:RUN_SHELL_COMMAND_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:TextBlock": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:WRITE_FILE_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:WRITE_TODOS_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.gemini_cli:file_lock": _TOOLSET_INTERNALS,
    "openreward.toolsets.hermes:PATCH_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.hermes:READ_FILE_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.hermes:SEARCH_FILES_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.hermes:TERMINAL_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.hermes:TextBlock": _TOOLSET_INTERNALS,
    "openreward.toolsets.hermes:WRITE_FILE_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.hermes:file_lock": _TOOLSET_INTERNALS,
    "openreward.toolsets.openclaw:APPLY_PATCH_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.openclaw:EDIT_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.openclaw:EXEC_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.openclaw:PROCESS_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.openclaw:READ_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.openclaw:TextBlock": _TOOLSET_INTERNALS,
    "openreward.toolsets.openclaw:WRITE_DESCRIPTION": _TOOLSET_INTERNALS,
    "openreward.toolsets.pdf": _TOOLSET_OFFICE,
    "openreward.toolsets.powerpoint": _TOOLSET_OFFICE,
    "openreward.toolsets.web:SearchBackend.search(include_snippets)": _TOOLSET_WEB,
    "openreward.toolsets.web:TRUTHY": _TOOLSET_WEB,
    "openreward.toolsets.web:WebToolset(config)": _TOOLSET_WEB,
    "openreward.toolsets.web:WebToolset(include_snippets)": _TOOLSET_WEB,
    "openreward.toolsets.web:WebToolset.aclose": _TOOLSET_WEB,
    "openreward.toolsets.web:describe_fetch": _TOOLSET_WEB,
    "openreward.toolsets.web:describe_search": _TOOLSET_WEB,
    "openreward.toolsets.web:read_env_hook": _TOOLSET_WEB,
    "openreward.toolsets.web:resolve_as_of": _TOOLSET_WEB,
    "openreward.toolsets.web:resolve_backend": _TOOLSET_WEB,
    "openreward.toolsets.web:resolve_backend_name": _TOOLSET_WEB,
    "openreward.toolsets.web:run_web_fetch": _TOOLSET_WEB,
    "openreward.toolsets.web:run_web_search": _TOOLSET_WEB,
    "openreward.toolsets.web:to_tool_output": _TOOLSET_WEB,
    "openreward.toolsets.word": _TOOLSET_OFFICE,
    "openreward.toolsets:BackSearchToolset(config)": _TOOLSET_WEB,
    "openreward.toolsets:ExcelToolset": _TOOLSET_OFFICE,
    "openreward.toolsets:PDFToolset": _TOOLSET_OFFICE,
    "openreward.toolsets:PowerPointToolset": _TOOLSET_OFFICE,
    "openreward.toolsets:WebToolset(config)": _TOOLSET_WEB,
    "openreward.toolsets:WebToolset(include_snippets)": _TOOLSET_WEB,
    "openreward.toolsets:WebToolset.aclose": _TOOLSET_WEB,
    "openreward.toolsets:WordToolset": _TOOLSET_OFFICE,
    # sandboxes (#7, #8): the reference's aiohttp plumbing, which the hosted backend (openreward.sandbox_hosted) replaces
    **{f"openreward.api.sandboxes.client:{n}": _AIOHTTP for n in ("BaseAsyncSession", "request_retryable", "resumable_sse")},
    **{f"{m}:AsyncSandboxesAPI.client": _SANDBOX_CLIENT for m in ("openreward", "openreward.api.sandboxes",
                                                                "openreward.api.sandboxes.client", "openreward.client")},
    **{f"{m}:SandboxSidecarContainer.validate_name_not_reserved": _VALIDATOR
       for m in ("openreward", "openreward.api.sandboxes", "openreward.api.sandboxes.types")},
    # rollouts (#11): the upload worker's internals and incidental re-exports
    "openreward.api.rollouts.background": _ROLLOUT_WORKER,
    **{f"{m}:Rollout({p})": _ROLLOUT_WORKER for m in ("openreward", "openreward.api.rollouts", "openreward.api.rollouts.rollout")
       for p in ("_in", "_loop", "web_base_url", "send_loop_config")},
    **{f"openreward.api.rollouts.rollout:{n}": _ROLLOUT_WORKER for n in ("LogMessageEvent", "RolloutStartedEvent",
                                                                       "RolloutUpdateEvent", "ShutdownEvent",
                                                                       "make_request", "start_background_worker")},
    **{f"openreward.models:{n}": _ROLLOUT_WORKER for n in ("FlushEvent", "InputEvent", "LogMessageEvent",
                                                          "RolloutStartedEvent", "RolloutUpdateEvent", "ShutdownEvent")},
    "openreward.api.rollouts.rollout:OpenAIChatMessage": _ROLLOUT_REEXPORTS,
    "openreward.api.rollouts.rollout:UploadType": _ROLLOUT_REEXPORTS,
    **{f"openreward.api.rollouts.serializers.{m}:NormalizedType": _ROLLOUT_REEXPORTS
       for m in ("ant", "gdm", "oai_responses", "utils")},
    "openreward.api.rollouts.serializers.ant:raw": _ROLLOUT_REEXPORTS,
    "openreward.api.rollouts.serializers.oai_completions:completions": _ROLLOUT_REEXPORTS,
    "openreward.api.rollouts.serializers.oai_completions:normalized": _ROLLOUT_REEXPORTS,
    "openreward.api.rollouts.serializers.oai_responses:responses": _ROLLOUT_REEXPORTS,
    **{f"openreward.client:{n}": _ROLLOUT_REEXPORTS for n in ("Config", "RolloutAPI", "RunInfo", "SendLoopConfig")},
    "openreward.cli": _CLI,
    "openreward.templates": _CLI, "openreward.templates.basic": _CLI, "openreward.templates.sandbox": _CLI,
    "openreward.templates.sandbox.sandbox_env": _CLI, "openreward.templates.sandbox.server": _CLI,
    "openreward.judging": _JUDGING, "openreward.judging._render": _JUDGING, "openreward.judging.group": _JUDGING,
    "openreward.judging.groupwise": _JUDGING, "openreward.judging.pairwise": _JUDGING,
    "openreward.judging.types": _JUDGING, "openreward:judging": _JUDGING,
    "openreward.chat_backends": _JUDGING, "openreward.chat_backends.base": _JUDGING,
    "openreward.chat_backends.openai": _JUDGING,
    "openreward.search_backends": _WEB, "openreward.search_backends.backsearch": _WEB,
    "openreward.search_backends.base": _WEB, "openreward.search_backends.tavily": _WEB,
    "openreward.tools": _WEB, "openreward.tools.search": _WEB, "openreward.tools.web": _WEB, "openreward:tools": _WEB,
    "openreward.web_service": _WEB,
    "openreward._update_check": "we never check PyPI for a newer release (the reference does on every client construction)",
    "openreward.client:check_for_updates_async": "we never check PyPI for a newer release",
    "openreward.http_client": _AIOHTTP,
    "openreward.log_utils": "the reference's structured-logging set-up; ours logs through the standard logging module",
    "openreward.api._session.ping": _AIOHTTP,
    "openreward.environments.reconnect": _SERVER_INTERNALS,
    "openreward.environments._metrics": _SERVER_INTERNALS,
    "openreward.environments.server:ErrorHandlingMiddleware": _SERVER_INTERNALS,
    "openreward.environments.server:RedirectToDefaultEnvMiddleware": _SERVER_INTERNALS,
    "openreward.environments.server:RequestContextMiddleware": _SERVER_INTERNALS,
    "openreward.environments.server:OPENREWARD_USE_STRUCTURED_LOGS": _SERVER_INTERNALS,
    "openreward.environments.server:call_session_tool": _SERVER_INTERNALS,
    "openreward.environments.server:check_for_updates_async": _SERVER_INTERNALS,
    "openreward.environments.server:extract_sid": _SERVER_INTERNALS,
    "openreward.environments.server:record_tool_call": _SERVER_INTERNALS,
    "openreward.environments.server:run_user_callable": _SERVER_INTERNALS,
    "openreward.environments.server:setup_logging": _SERVER_INTERNALS,
    "openreward.environments.server:setup_metrics": _SERVER_INTERNALS,
    "openreward.environments.server:shutdown_metrics": _SERVER_INTERNALS,
    "openreward.environments.server:sse_task_stream": _SERVER_INTERNALS,
    "openreward.environments.session:call_session_tool": _SERVER_INTERNALS,
    "openreward.environments.session:run_user_callable": _SERVER_INTERNALS,
    "openreward.environments.utils:run_user_callable": _SERVER_INTERNALS,
    "openreward.environments.environment:run_user_callable": _SERVER_INTERNALS,
    # the request-body models of the reference's server
    **{f"{m}:{n}": "request-body models of the reference's server; ours reads bodies with its own strict parser"
       for m in ("openreward.environments.types", "openreward.environments.server")
       for n in ("GetTask", "GetTaskRange", "ListTasks", "NumTasks", "ScoreGroup")},
    # pydantic validators, public by name only
    **{f"{m}:Message.check_block_placement": "a pydantic validator of the reference's model; ours validates the same"
       for m in ("openreward.environments", "openreward.environments.environment", "openreward.environments.server",
                 "openreward.environments.types", "openreward.environments.utils")},
    **{f"{m}:CreateSession.check_task_source": "a pydantic validator of the reference's model; ours validates the same"
       for m in ("openreward.environments", "openreward.environments.server", "openreward.environments.types")},
    # the aiohttp machinery, re-exported by the client modules
    **{f"openreward.api._session:{n}": _AIOHTTP for n in ("BaseAsyncSession", "ErrorResponse", "request_retryable",
                                                          "resumable_sse")},
    **{f"openreward.api._session.http:{n}": _AIOHTTP for n in ("get_logger", "request_retryable", "resumable_sse",
                                                               "set_retry_policy")},
    **{f"openreward.api._session.session:{n}": _AIOHTTP for n in ("BaseAsyncSession", "ErrorResponse", "SessionKind", "ping",
                                                                  "ping_thread", "request_retryable", "resumable_sse",
                                                                  "set_retry_policy")},
    **{f"openreward.api.environments.client:{n}": _AIOHTTP for n in ("BaseAsyncSession", "ErrorResponse", "SessionKind",
                                                                     "matrix_sid_provider", "request_retryable",
                                                                     "resumable_sse", "set_retry_policy")},
    **{f"{m}:RetryPolicy": ("the reference's RetryPolicy is a Literal naming its two internal retry modes; ours "
                            "(openreward.client.RetryPolicy) is a dataclass of settings: a different thing, so not "
                            "offered under this name here")
       for m in ("openreward.api._session.session", "openreward.api._session.http", "openreward.api.environments.client")},
    "openreward.api.environments.client:Mapping": "typing.Mapping, re-exported by accident",
    **{f"{m}:AsyncSession.client": "the session's aiohttp.ClientSession; ours has no aiohttp session"
       for m in ("openreward", "openreward.api.environments", "openreward.api.environments.client")},
    # constructors the client calls (key `module:Class()`: the constructor's parameters)
    **{f"{m}:{c}()": _BUILT_BY_CLIENT for m in ("openreward", "openreward.client", "openreward.api.environments",
                                               "openreward.api.environments.client")
       for c in ("EnvironmentsAPI", "AsyncEnvironmentsAPI")},
    **{f"{m}:{c}()": _BUILT_BY_CLIENT for m in ("openreward", "openreward.api.environments",
                                               "openreward.api.environments.client")
       for c in ("Session", "AsyncSession")},
    **{f"openreward.api.environments.client:{c}()": _BUILT_BY_CLIENT for c in ("Environment", "AsyncEnvironment")},
    "openreward.api._session.http:SessionResponseError()": (
        "aiohttp's constructor arguments (request_info, history, code) describe an aiohttp request, which ours has "
        "not; the client builds these errors with SessionResponseError.from_response"),
    **{f"openreward.api.environments.client:{f}(x)": "called positionally by every consumer; ours names it `value`"
       for f in ("_sanitize_openai_schema", "_sanitize_google_schema")},
}

ALLOW = {**FROM_BRANCHES, **DECLINED}

# -------------------------------------------------------------------------------------------------------------------

def run_inventory(python: str | Path) -> dict:
    "The surface of the `openreward` that `python` imports (run outside the checkout, so only the installed one)."
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([str(python), "-P", str(INVENTORY)], capture_output=True, text=True, cwd=tmp, timeout=300,
                           env=subprocess_env())
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout)

def gaps(ref: dict, ours: dict) -> tuple[list[str], set[str]]:
    "What the reference has and ours lacks (not allowed), and the allow-list keys that matched a real gap."
    missing, used = [], set()
    def note(allowed_keys: list[str], what: str):
        hit = next((k for k in allowed_keys if k in ALLOW), None)
        if hit: used.add(hit)
        else: missing.append(what)
    def kwargs_missing(rp, op):
        if rp is None or op is None or "**" in op: return []
        return [p for p in rp if p not in ("*", "**") and p not in op]
    for mod, info in ref["modules"].items():
        mine = ours["modules"].get(mod)
        if mine is None or mine["error"] is not None:
            note([mod], f"module {mod}" + (f" (ours fails to import: {mine['error']})" if mine else ""))
            continue
        if mod in ALLOW: used.add(mod)  # a declined module that exists partly: its names are not required
        for name, spec in info["names"].items():
            if mod in ALLOW: break
            theirs = mine["names"].get(name)
            if theirs is None:
                note([f"{mod}:{name}"], f"{mod}:{name} ({spec['kind']})")
                continue
            if spec["kind"] in ("class", "function") and theirs["kind"] != spec["kind"]:
                note([f"{mod}:{name}"], f"{mod}:{name} is a {spec['kind']} there, a {theirs['kind']} here")
                continue
            for p in kwargs_missing(spec.get("params"), theirs.get("params")):
                note([f"{mod}:{name}", f"{mod}:{name}()", f"{mod}:{name}({p})"], f"{mod}:{name}(... {p}=...)")
            for member, rparams in (spec.get("members") or {}).items():
                oparams = (theirs.get("members") or {}).get(member, "missing")
                if oparams == "missing":
                    note([f"{mod}:{name}", f"{mod}:{name}.{member}"], f"{mod}:{name}.{member}")
                    continue
                for p in kwargs_missing(rparams, oparams):
                    note([f"{mod}:{name}", f"{mod}:{name}.{member}", f"{mod}:{name}.{member}({p})"],
                         f"{mod}:{name}.{member}(... {p}=...)")
    return missing, used

@pytest.fixture(scope="module")
def ours() -> dict:
    return run_inventory(sys.executable)

def test_every_reference_path_and_name_is_ours_or_declined(ours):
    ref = json.loads(SNAPSHOT.read_text())
    missing, used = gaps(ref, ours)
    assert not missing, ("the reference SDK has these, ours does not (add them, or decline each in tests/test_inventory.py "
                         "with its reason):\n  " + "\n  ".join(missing))
    stale = sorted(set(ALLOW) - used)
    assert not stale, "ours provides these now (or the reference never had them): delete their ALLOW entries:\n  " + "\n  ".join(stale)

def test_the_semi_public_helpers_are_there(ours):
    "The underscore helpers consumers import are part of the inventory, and ours has them."
    names = ours["modules"]["openreward.api.environments.client"]["names"]
    assert {"_strip_titles", "_sanitize_openai_schema", "_sanitize_google_schema", "Task"} <= set(names)

def test_gaps_are_found():
    "The comparison is not vacuous: a module, a name, a member and a parameter that ours lacks are each reported."
    ref = {"modules": {"openreward.x": {"error": None, "names": {}},
                       "openreward.api.environments.client": {"error": None, "names": {
                           "Nope": {"kind": "class", "params": [], "members": {}},
                           "Session": {"kind": "class", "params": ["core", "io"], "members": {"gone": [], "call_tool": ["tool_name", "zzz"]}}}}}}
    ours = {"modules": {"openreward.api.environments.client": {"error": None, "names": {
        "Session": {"kind": "class", "params": ["core", "io"], "members": {"call_tool": ["tool_name", "input"]}}}}}}
    missing, _ = gaps(ref, ours)
    assert missing == ["module openreward.x", "openreward.api.environments.client:Nope (class)",
                       "openreward.api.environments.client:Session.gone",
                       "openreward.api.environments.client:Session.call_tool(... zzz=...)"]

@pytest.mark.interop
def test_stored_reference_inventory_is_current(reference_python):
    "The stored description is what the reference venv gives today (regenerate it with the command in inventory_reference.py)."
    assert run_inventory(reference_python) == json.loads(SNAPSHOT.read_text())
