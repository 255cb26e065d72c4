"""Every tool of every built-in toolset, driven on a sandbox: what it answers, and its error paths (missing file,
ambiguous edit, timeout, binary file, paths with spaces and quotes, a path outside the workspace, a dead sandbox).

Every sandbox is a real local (bubblewrap) sandbox from `toolset_sandbox.new_sandbox()`; the toolsets reach it only
through the public sandbox API.
"""
import asyncio, json
from types import SimpleNamespace

import pytest

from openreward.errors import SessionTerminatedError
from openreward.toolsets import (BUILTIN_TOOLSETS, CLIToolset, ClaudeCodeToolset, CodexToolset, GeminiCliToolset,
                                 HermesToolset, OpenClawToolset, download_text, upload_text)
from openreward.toolsets import cli, claude_code, codex, gemini_cli, hermes, openclaw
from toolset_sandbox import new_sandbox

def run(coro): return asyncio.run(coro)
def text(out): return out.blocks[0].text

async def with_box(fn, *toolsets, **env):
    "Start a sandbox, build the toolsets over it, run `fn(sb, *instances)`, stop the sandbox."
    sb = new_sandbox()
    await sb.start()
    try:
        e = SimpleNamespace(sandbox=sb, **env)
        return await fn(sb, *(ts(e) for ts in toolsets))
    finally: await sb.stop()

ODD = "dir with space/it's \"quoted\".txt"  # a path with spaces and both kinds of quotes

# ---- cli ------------------------------------------------------------------------------------------------------

def test_cli_round_trip_and_errors():
    async def go(sb, t):
        P = cli
        assert text(await t.write(P.WriteParams(file_path=ODD, content="alpha\nbeta\nbeta\n"))) == f"Successfully wrote to {ODD}\n\n(exit 0)"
        assert await download_text(sb, ODD) == "alpha\nbeta\nbeta\n"  # exactly what was written
        assert text(await t.read(P.ReadParams(file_path=ODD, offset=2, limit=1))) == "     2\tbeta\n\n(exit 0)"
        assert text(await t.read(P.ReadParams(file_path=ODD))) == "     1\talpha\n     2\tbeta\n     3\tbeta\n\n(exit 0)"
        assert "past its end" in text(await t.read(P.ReadParams(file_path=ODD, offset=9, limit=1)))
        # ambiguous, missing, then a good edit
        r = await t.edit(P.EditParams(file_path=ODD, old_string="beta", new_string="gamma"))
        assert text(r) == f"Error: old_string appears 2 times in {ODD}. Must be unique unless replace_all=true."
        assert "not found" in text(await t.edit(P.EditParams(file_path=ODD, old_string="zeta", new_string="x")))
        assert "empty" in text(await t.edit(P.EditParams(file_path=ODD, old_string="", new_string="x")))
        r = await t.edit(P.EditParams(file_path=ODD, old_string="beta", new_string="gamma", replace_all=True))
        assert text(r) == f"Successfully edited {ODD}\n\n(exit 0)" and r.metadata["replacements"] == 2
        # grep with a quote in the pattern, include filter; glob with **
        await t.write(P.WriteParams(file_path="src/pkg/m.py", content="s = \"it's\"\n"))
        assert text(await t.grep(P.GrepParams(pattern="it's", path="src", include="*.py"))) == "src/pkg/m.py:1:s = \"it's\"\n\n(exit 0)"
        assert text(await t.grep(P.GrepParams(pattern="nothing-here", path="src"))) == "\n\n(exit 1)"
        assert text(await t.glob(P.GlobParams(pattern="src/**/*.py"))) == "./src/pkg/m.py\n\n(exit 0)"
        assert text(await t.glob(P.GlobParams(pattern="*.txt", path="dir with space"))) == f"{ODD}\n\n(exit 0)"
        out = text(await t.ls(P.LSParams(path="dir with space")))
        assert "it's" in out and out.endswith("(exit 0)")
        assert "it's" not in text(await t.ls(P.LSParams(path="dir with space", ignore=["*.txt"])))
        # missing file, binary file, directory
        assert text(await t.read(P.ReadParams(file_path="nope.txt"))).startswith("Error reading file: ")
        await sb.run("printf '\\x89PNG\\x00\\xff\\xfe' > img.png")
        assert "not a UTF-8 text file" in text(await t.read(P.ReadParams(file_path="img.png")))
        assert "not a UTF-8 text file" in text(await t.edit(P.EditParams(file_path="img.png", old_string="PNG", new_string="x")))
        assert text(await t.read(P.ReadParams(file_path="src"))).startswith("Error reading file: ")
        # multi_edit: all or nothing
        r = await t.multi_edit(P.MultiEditParams(file_path=ODD, edits=[{"old_string": "alpha", "new_string": "A"}, {"old_string": "zzz", "new_string": "B"}]))
        assert text(r) == f"Error in edit 2 of 2: old_string not found in {ODD}. No edit was applied."
        assert (await download_text(sb, ODD)).startswith("alpha")
        r = await t.multi_edit(P.MultiEditParams(file_path=ODD, edits=[{"old_string": "alpha", "new_string": "A"}, {"old_string": "gamma", "new_string": "G", "replace_all": True}]))
        assert text(r) == "Successfully applied 2 edits with 3 total replacements"
        r = await t.todo_write(P.TodoWriteParams(todos=[P.TodoItem(content="fix", status="in_progress")]))
        assert text(r) == "=== TODO LIST ===\n[in_progress] [medium] fix" and r.metadata["count"] == 1
        # bash: exit code, stderr merged, timeout honoured and noted
        assert text(await t.bash(P.BashParams(command="echo out; echo err >&2; exit 3"))) == "out\nerr\n\n(exit 3)"
        r = await t.bash(P.BashParams(command="sleep 10", timeout=0.5))
        assert text(r) == "\n\n(exit 124)\n\n[command hit the 0.5s time limit and was killed]" and r.metadata["timed_out"]
    run(with_box(go, CLIToolset))

def test_cli_big_write_no_e2big():
    async def go(sb, t):
        big = "".join(f"line {i} {'x' * 60}\n" for i in range(20_000))  # ~1.4 MB, far past one command line
        assert text(await t.write(cli.WriteParams(file_path="big.txt", content=big))).startswith("Successfully wrote")
        assert await download_text(sb, "big.txt") == big
        await upload_text(sb, "big2.txt", big)
        assert (await sb.run("wc -l < big2.txt")).output == "20000"
    run(with_box(go, CLIToolset))

def test_edits_keep_mode_and_symlinks():
    "An edit writes through the file, as a shell redirect would: an executable stays executable, a symlink a symlink."
    async def go(sb, t):
        await sb.run("printf '#!/bin/sh\\necho one\\n' > run.sh && chmod 755 run.sh && ln -s run.sh link.sh")
        await t.edit(cli.EditParams(file_path="link.sh", old_string="one", new_string="two"))
        r = await sb.run("test -L link.sh && test -x run.sh && ./run.sh")
        assert (r.return_code, r.output) == (0, "two")
    run(with_box(go, CLIToolset))

def test_cli_truncation_noted_and_knobs():
    class Small(CLIToolset):
        bash_max_bytes, max_bash_timeout = 100, 0.5
    async def go(sb, t):
        r = await t.bash(cli.BashParams(command="seq 1 1000"))
        assert r.metadata["truncated"] and text(r).endswith("[output exceeded the limit and was cut off]")
        r = await t.bash(cli.BashParams(command="sleep 10", timeout=60))  # capped at 0.5 s
        assert r.metadata["timed_out"] and "0.5s time limit" in text(r)
    run(with_box(go, Small))

def test_cli_rooted_workspace():
    async def go(sb, _):
        await sb.run("mkdir -p 'my work/src'")
        ws = (await sb.run("cd 'my work' && pwd")).output
        t = CLIToolset(SimpleNamespace(sandbox=sb, workspace_root=ws))
        assert t.root == ws
        await t.write(cli.WriteParams(file_path="src/a.py", content="x = 1\n"))
        assert await download_text(sb, "my work/src/a.py") == "x = 1\n"
        assert text(await t.bash(cli.BashParams(command="cat src/a.py"))) == "x = 1\n\n(exit 0)"
        r = await t.write(cli.WriteParams(file_path="../escape.txt", content="no"))
        assert "outside the workspace root" in text(r)
        assert (await sb.run("test -e escape.txt")).return_code == 1
        assert "outside the workspace root" in text(await t.read(cli.ReadParams(file_path="../../etc/passwd")))
    run(with_box(go, CLIToolset))

def test_write_outside_workspace_refused_by_the_sandbox():
    async def go(sb, t):
        r = await t.write(cli.WriteParams(file_path="/usr/bin/evil", content="x"))
        assert text(r).startswith("Error writing file: ")
        assert (await sb.run("test -e /usr/bin/evil")).return_code == 1
        r = await t.bash(cli.BashParams(command="cat /etc/shadow"))
        assert r.metadata["exit_code"] != 0
    run(with_box(go, CLIToolset))

# ---- claude-code and codex ----------------------------------------------------------------------------------

def test_claude_code_tools():
    async def go(sb, t):
        P = claude_code
        r = await t.bash(P.BashParams(command="echo hi", description="say hi"))
        assert text(r) == "hi\n\n(exit 0)" and r.metadata["description"] == "say hi"
        r = await t.bash(P.BashParams(command="sleep 10", timeout=1500))  # 1500 ms
        assert r.metadata["timed_out"] and "1.5s time limit" in text(r)
        assert text(await t.write(P.WriteParams(file_path=ODD, content="a\nb\n"))).startswith("Successfully wrote")
        assert text(await t.read(P.ReadParams(file_path=ODD, offset=2))) == "     2\tb\n\n(exit 0)"
        assert text(await t.grep(P.GrepParams(pattern="^b$", path="dir with space", glob="*.txt"))) == f"{ODD}:2:b\n\n(exit 0)"
        assert text(await t.glob(P.GlobParams(pattern="*.txt"))) == f"./{ODD}\n\n(exit 0)"
        await sb.run("touch -d '2020-01-01' old.md && touch new.md")
        assert text(await t.glob(P.GlobParams(pattern="*.md"))) == "./new.md\n./old.md\n\n(exit 0)"  # newest first
        await t.write(P.WriteParams(file_path="f.js", content="function  go() {}\n"))
        assert text(await t.grep(P.GrepParams(pattern=r"function\s+\w+", glob="*.js"))) == "./f.js:1:function  go() {}\n\n(exit 0)"
        assert text(await t.edit(P.EditParams(file_path=ODD, old_string="b", new_string="c"))) == f"Successfully edited {ODD}\n\n(exit 0)"
        r = await t.todo_write(P.TodoWriteParams(todos=[{"content": "x"}, {}]))
        assert text(r) == "=== TODO LIST ===\n[pending] [medium] x\n[pending] [medium] No description" and r.reward == 0.0
    run(with_box(go, ClaudeCodeToolset))

def test_codex_bash():
    async def go(sb, t):
        r = await t.bash(codex.BashParams(command="  echo one; exit 2  ", description="d"))
        assert (text(r), r.reward, r.metadata["description"]) == ("one\n\n(exit 2)", 0.0, "d")
        r = await t.bash(codex.BashParams(command="sleep 10", timeout=0.4))
        assert r.metadata["timed_out"]
    run(with_box(go, CodexToolset))

def test_claude_code_bash_default_timeout_not_300s():
    from openreward.toolsets.claude_code import bash_seconds
    assert bash_seconds(30.0) == 30.0 and bash_seconds(120000) == 120.0 and bash_seconds(10**9) == 600.0

# ---- gemini-cli ---------------------------------------------------------------------------------------------

def test_gemini_cli_tools():
    async def go(sb, t):
        P = gemini_cli
        assert text(await t.write_file(P.WriteFileParams(file_path=ODD, content="it's here\nsecond\n"))).startswith("Successfully wrote")
        assert text(await t.grep_search(P.GrepSearchParams(pattern="it's", dir_path="dir with space"))) == f"{ODD}:1:it's here\n\n(exit 0)"
        assert text(await t.grep_search(P.GrepSearchParams(pattern="'; touch pwned; '"))).endswith("(exit 1)")
        assert (await sb.run("test -e pwned")).return_code == 1  # the pattern was data, not a command
        assert text(await t.grep_search(P.GrepSearchParams(pattern="here", names_only=True))) == f"./{ODD}\n\n(exit 0)"
        assert text(await t.grep_search(P.GrepSearchParams(pattern="here", exclude_pattern="*.txt"))) == "\n\n(exit 1)"
        await sb.run("for i in $(seq 1 30); do echo match > f$i.log; done")
        r = await t.grep_search(P.GrepSearchParams(pattern="match", total_max_matches=5))
        assert r.metadata["truncated"] and text(r).endswith("[showing the first 5 of 30 matches]")
        assert text(await t.read_file(P.ReadFileParams(file_path=ODD, start_line=2, end_line=2))) == "     2\tsecond\n\n(exit 0)"
        assert "before start_line" in text(await t.read_file(P.ReadFileParams(file_path=ODD, start_line=2, end_line=1)))
        r = await t.replace(P.ReplaceParams(file_path=ODD, old_string="e", new_string="E"))
        assert "Must be unique unless allow_multiple=true" in text(r)
        r = await t.replace(P.ReplaceParams(file_path=ODD, old_string="e", new_string="E", allow_multiple=True, instruction="caps"))
        assert r.reward == 0.0 and r.metadata["instruction"] == "caps"
        assert "f1.log" in text(await t.list_directory(P.ListDirectoryParams(dir_path=".")))
        assert "f1.log" not in text(await t.list_directory(P.ListDirectoryParams(dir_path=".", ignore=["*.log"])))
        assert text(await t.run_shell_command(P.RunShellCommandParams(command="basename \"$PWD\"", dir_path="dir with space"))) == "dir with space\n\n(exit 0)"
        r = await t.run_shell_command(P.RunShellCommandParams(command="echo early; sleep 30", is_background=True, delay_ms=500))
        assert r.metadata["output"] == "early"
        assert (await sb.run(f"kill -0 {r.metadata['pid']}")).return_code == 0
        await sb.run(f"kill -KILL -- -{r.metadata['pid']}")
        await sb.run("mkdir -p g && touch -d '2020-01-01' g/old.py && touch g/new.py && touch g/skip.txt")
        ws = (await sb.run("pwd")).output
        assert text(await t.glob(P.GlobParams(pattern="*.py", dir_path="g"))) == f"{ws}/g/new.py\n{ws}/g/old.py\n\n(exit 0)"
        await t.write_file(P.WriteFileParams(file_path="long.txt", content="".join(f"{i}\n" for i in range(1, 2501))))
        r = await t.read_file(P.ReadFileParams(file_path="long.txt"))
        assert r.metadata["truncated"] and text(r).endswith("[showing lines 1-2000 of 2500; ask for a range to read more]")
        assert text(await t.read_file(P.ReadFileParams(file_path="long.txt", start_line=2500))) == "  2500\t2500\n\n(exit 0)"
        r = await t.write_todos(P.WriteTodosParams(todos=[P.TodoItem(description="plan", status="blocked")]))
        assert text(r) == "[blocked] plan"
    run(with_box(go, GeminiCliToolset))

# ---- hermes -------------------------------------------------------------------------------------------------

def test_hermes_tools():
    async def go(sb, t):
        P = hermes
        assert text(await t.write_file(P.WriteFileParams(path=ODD, content="".join(f"l{i}\n" for i in range(1, 11))))) == f"Successfully wrote to {ODD}"
        assert text(await t.read_file(P.ReadFileParams(path=ODD, offset=9, limit=5))) == "9|l9\n10|l10"
        assert text(await t.read_file(P.ReadFileParams(path=ODD, limit=2))) == "1|l1\n2|l2\n\n[lines 1-2 of 10; use offset=3 to read more]"
        assert text(await t.read_file(P.ReadFileParams(path="missing"))).startswith("Error reading file: ")
        r = await t.search_files(P.SearchFilesParams(pattern="l1", limit=1))
        assert text(r).startswith(f"./{ODD}:1:l1") and "use offset=1 for more" in text(r)
        assert text(await t.search_files(P.SearchFilesParams(pattern="*.txt", target="files"))) == f"./{ODD}"
        assert text(await t.search_files(P.SearchFilesParams(pattern="zzz"))) == "No matches found."
        assert text(await t.search_files(P.SearchFilesParams(pattern="l", output_mode="count"))) == f"./{ODD}:10"
        assert text(await t.search_files(P.SearchFilesParams(pattern="(", path="."))).startswith("search_files failed (exit 2)")
        assert text(await t.patch(P.PatchParams(path=ODD, old_string="l1\n", new_string="L1\n"))) == f"Successfully patched {ODD}"
        assert "required for replace mode" in text(await t.patch(P.PatchParams(path=ODD)))
        v4a = f"*** Begin Patch\n*** Update File: {ODD}\n@@\n-l2\n+L2\n*** End Patch"
        assert text(await t.patch(P.PatchParams(mode="patch", patch=v4a))) == f"Success. Updated the following files:\nM {ODD}"
        uni = "--- a/new.txt\n+++ b/new.txt\n@@ -0,0 +1 @@\n+born\n".replace("a/new.txt", "/dev/null", 1)
        assert text(await t.patch(P.PatchParams(mode="patch", patch=uni))) == "Success. Updated the following files:\nA new.txt"
        assert "does not fit" in text(await t.patch(P.PatchParams(mode="patch", patch=v4a)))
        assert "unknown patch mode" in text(await t.patch(P.PatchParams(mode="v5")))
        r = await t.terminal(P.TerminalParams(command="sleep 10", timeout=1))
        assert r.metadata["timed_out"] and text(r).endswith("[command hit the 1s time limit and was killed]")
    run(with_box(go, HermesToolset))

# ---- openclaw -----------------------------------------------------------------------------------------------

def test_openclaw_tools():
    async def go(sb, t):
        P = openclaw
        assert text(await t.write(P.WriteParams(path=ODD, content="one\ntwo\nthree\n"))) == f"Successfully wrote to {ODD}"
        assert text(await t.read(P.ReadParams(path=ODD, offset=2, limit=1))) == "two\n\n[lines 2-2 of 3]"
        assert text(await t.read(P.ReadParams(path=ODD))) == "one\ntwo\nthree"
        r = await t.edit(P.EditParams(path=ODD, edits=[P.EditItem(oldText="two", newText="2"), P.EditItem(oldText="nope", newText="x")]))
        assert text(r).startswith(f"Error: oldText not found in {ODD}: nope")
        assert await download_text(sb, ODD) == "one\ntwo\nthree\n"  # all or nothing
        assert "appears 3 times" in text(await t.edit(P.EditParams(path=ODD, edits=[P.EditItem(oldText="e", newText="E")])))
        assert text(await t.edit(P.EditParams(path=ODD, edits=[P.EditItem(oldText="two", newText="2")]))) == f"Successfully edited {ODD}"
        patch = (f"*** Begin Patch\n*** Update File: {ODD}\n*** Move to: moved.txt\n@@\n one\n-2\n+TWO\n"
                 f"*** Delete File: gone.txt\n*** End Patch")
        assert "no such file to delete" in text(await t.apply_patch(P.ApplyPatchParams(input=patch)))
        await sb.run("echo bye > gone.txt")
        assert text(await t.apply_patch(P.ApplyPatchParams(input=patch))) == "Success. Updated the following files:\nM moved.txt\nD gone.txt"
        assert await download_text(sb, "moved.txt") == "one\nTWO\nthree\n"
        assert (await sb.run(f"test -e {json.dumps(ODD)} || test -e gone.txt")).return_code == 1
        assert "not a patch" in text(await t.apply_patch(P.ApplyPatchParams(input="garbage")))
        r = await t.exec(P.ExecParams(command="sleep 10", timeout=0.5))
        assert r.metadata["timed_out"]
    run(with_box(go, OpenClawToolset))

def test_openclaw_background_process():
    async def go(sb, t):
        P = openclaw
        assert text(await t.process(P.ProcessParams(action="list"))) == "No background processes."
        assert "sessionId is required" in text(await t.process(P.ProcessParams(action="poll")))
        assert "unknown process action" in text(await t.process(P.ProcessParams(action="dance")))
        r = await t.process(P.ProcessParams(action="start", data="echo up; while read l; do echo \"<$l>\"; done; exit 7"))
        sid = r.metadata["sessionId"]
        await t.process(P.ProcessParams(action="write", sessionId=sid, data="a b\n"))
        await t.process(P.ProcessParams(action="write", sessionId=sid, data="c\n", eof=True))
        seen = ""
        for _ in range(100):  # bounded: up to 10 s
            r = await t.process(P.ProcessParams(action="poll", sessionId=sid))
            seen += r.metadata["output"]
            if r.metadata["status"].startswith("exited"): break
            await asyncio.sleep(0.1)
        assert r.metadata["status"] == "exited 7" and seen.split() == ["up", "<a", "b>", "<c>"], (r.metadata, seen)
        assert text(await t.process(P.ProcessParams(action="log", sessionId=sid, offset=1, limit=1))) == "<a b>\n\n[lines 2-2 of 3]"
        # a background exec (trailing &) with a child, killed as a group
        r = await t.exec(P.ExecParams(command="sleep 300 & sleep 301 &"))
        sid2 = r.metadata["sessionId"]
        await asyncio.sleep(0.3)
        assert (await sb.run("pgrep -f 'sleep 30[01]' | wc -l")).output.strip() in ("2", "3")
        assert "running" in text(await t.process(P.ProcessParams(action="list")))
        await t.process(P.ProcessParams(action="kill", sessionId=sid2))
        assert (await sb.run("pgrep -f 'sleep 30[01]'")).return_code == 1  # nothing left
        assert text(await t.process(P.ProcessParams(action="remove", sessionId=sid2))) == f"Removed session {sid2}."
        assert "no background session" in text(await t.process(P.ProcessParams(action="poll", sessionId=sid2)))
    run(with_box(go, OpenClawToolset))

# ---- every toolset: a dead sandbox ends the call, it is not ordinary tool text ------------------------------

class DeadSandbox:
    "Every call fails the way a terminated hosted sandbox does."
    async def run(self, *a, **k): raise SessionTerminatedError("sandbox session terminated (sid='x')")
    check_run = download = upload_from = stat_file = run

CALLS = {"cli": ("bash", {"command": "true"}), "claude-code": ("read", {"file_path": "x"}), "codex": ("bash", {"command": "true"}),
         "gemini-cli": ("grep_search", {"pattern": "x"}), "hermes": ("read_file", {"path": "x"}), "openclaw": ("write", {"path": "x", "content": "y"})}

@pytest.mark.parametrize("key", sorted(CALLS))
def test_dead_sandbox_propagates(key):
    from openreward.authoring import table_of
    ts = BUILTIN_TOOLSETS[key](SimpleNamespace(sandbox=DeadSandbox()))
    name, args = CALLS[key]
    model = table_of(type(ts)).own[name].model
    with pytest.raises(SessionTerminatedError):
        run(getattr(ts, name)(model(**args)))
