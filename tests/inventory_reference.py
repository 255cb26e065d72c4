"""Inventory of an `openreward` package's import surface: every module path, every name a consumer can import.

Run it with the interpreter whose `openreward` you want described; it prints (or writes, with `--out`) JSON:

    {"version": "0.1.167",
     "modules": {"openreward.api.environments.client":
                    {"error": null,
                     "names": {"AsyncSession": {"kind": "class", "params": [...],
                                                "members": {"call_tool": ["name", "input"], ...}}, ...}}}}

What counts as a name of a module, read from its source (so imports of `typing`, `asyncio` ... are not API):
- everything bound at its top level by `def`, `class`, assignment or a `from openreward... import` (relative
  imports included), also inside top-level `if`/`try` blocks; plus whatever its `__all__` lists;
- names with a leading underscore only when `SEMI_PUBLIC` lists them: private in the reference, imported by
  third-party packages all the same;
- but not module-level loggers (`logger`) and type variables (`T`).

For callables it records the parameter names, and for classes their public methods' and properties' parameter
names, so a consumer's keyword arguments can be checked too. `tests/test_inventory.py` runs this under the
reference venv and under ours and fails when the reference has a module, name, member or parameter ours lacks
(unless its allow-list says why not). Regenerate the stored snapshot with:

    .cache/reference-venv/bin/python tests/inventory_reference.py --out tests/fixtures/reference_inventory.json
"""
from __future__ import annotations

import argparse, ast, importlib, inspect, json, logging, pkgutil, sys, typing, warnings

# Underscore names consumers import from the reference (found in the packages built on it, e.g. agent harnesses'
# schema conversion imports the three schema helpers from the client module).
SEMI_PUBLIC: dict[str, set[str]] = {
    "openreward.api.environments.client": {"_strip_titles", "_sanitize_openai_schema", "_sanitize_google_schema"},
}

def _bound_names(body: list[ast.stmt]) -> set[str]:
    "Names a module body binds at top level (descending into `if`/`try`/`with`, never into functions or classes)."
    out: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name): out.add(n.id)
        elif type(node).__name__ == "TypeAlias": out.add(node.name.id)  # `type X = ...` (Python 3.12+)
        elif isinstance(node, ast.ImportFrom):
            # re-exports from inside the SDK are API; imports from other libraries are not
            if node.level or (node.module or "").split(".")[0] == "openreward":
                out.update(a.asname or a.name for a in node.names if a.name != "*")
        elif isinstance(node, ast.Import):
            out.update(a.asname for a in node.names if a.asname and a.name.split(".")[0] == "openreward")
        elif isinstance(node, ast.If): out |= _bound_names(node.body) | _bound_names(node.orelse)
        elif isinstance(node, ast.Try):
            out |= _bound_names(node.body) | _bound_names(node.orelse) | _bound_names(node.finalbody)
            for h in node.handlers: out |= _bound_names(h.body)
        elif isinstance(node, ast.With): out |= _bound_names(node.body)
    return out

def _params(obj) -> list[str] | None:
    "Parameter names of a callable (`*args`/`**kwargs` as `*`/`**`), or None when it has no signature."
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return None
    names = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL: names.append("*")
        elif p.kind is p.VAR_KEYWORD: names.append("**")
        elif p.name != "self": names.append(p.name)
    return names

def _members(cls: type) -> dict[str, list[str] | None]:
    "Public methods and properties a class defines or inherits from the SDK itself, with their parameter names."
    out = {}
    for klass in cls.__mro__:
        if not (getattr(klass, "__module__", "") or "").startswith("openreward"): continue
        for name, attr in vars(klass).items():
            if name.startswith("_") or name in out: continue
            if isinstance(attr, property): out[name] = []
            elif isinstance(attr, (staticmethod, classmethod)): out[name] = _params(attr.__func__)
            elif inspect.isfunction(attr): out[name] = _params(attr)
    return out

def describe(obj) -> dict:
    "Kind of `obj`, and its parameters and members where that makes sense."
    if inspect.ismodule(obj): return {"kind": "module"}
    if inspect.isclass(obj):
        return {"kind": "class", "params": _params(obj), "members": _members(obj)}
    if callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj)):
        return {"kind": "function", "params": _params(obj)}
    return {"kind": "value"}

def _internal(value) -> bool:
    "Module-level loggers (stdlib or structlog) and type variables: bound at top level, not imported as API."
    return (isinstance(value, (logging.Logger, logging.LoggerAdapter, typing.TypeVar))
            or type(value).__module__.split(".")[0] == "structlog")

def module_names(name: str, module) -> set[str]:
    "The API names of `module` (see the module docstring)."
    names: set[str] = set(getattr(module, "__all__", ()) or ())
    try: source = inspect.getsource(module)
    except (OSError, TypeError): source = ""
    if source: names |= _bound_names(ast.parse(source).body)
    return {n for n in names if (not n.startswith("_") or n in SEMI_PUBLIC.get(name, ()))
            and not _internal(getattr(module, n, None))}

def inventory() -> dict:
    "The whole surface of the importable `openreward` package."
    import openreward
    try:
        from importlib.metadata import version
        ver = version("openreward")
    except Exception: ver = getattr(openreward, "__version__", None)
    paths = ["openreward"] + sorted(m.name for m in pkgutil.walk_packages(openreward.__path__, "openreward.",
                                                                         onerror=lambda name: None))
    modules = {}
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(path)
        except BaseException as e:  # a template module may exit or fail on import: it is still a path
            modules[path] = {"error": f"{type(e).__name__}: {e}"[:300], "names": {}}
            continue
        names = {}
        for n in sorted(module_names(path, module)):
            names[n] = describe(getattr(module, n)) if hasattr(module, n) else {"kind": "unbound"}
        modules[path] = {"error": None, "names": names}
    return {"version": ver, "modules": modules}

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    args = ap.parse_args()
    text = json.dumps(inventory(), indent=1, sort_keys=True) + "\n"
    if args.out:
        with open(args.out, "w") as f: f.write(text)
    else: sys.stdout.write(text)
