"""The tool manifest of a system, for its own actors and in the crate's MCP shapes.

An actor asks ``self.host_tools()`` (an ``mcp_request`` for the reserved tool
``actors.manifest``) and gets ``[{"name", "signature", "doc"}]``. A process of the
original crate sends its ``McpRequest`` body instead: ``{"op": "manifest"}`` or
``{"op": "call", "tool": <name>, "arguments": <JSON text>}``, and is answered with
its ``McpReply``: ``{"manifest": [ToolSchema]}``, ``{"result": {"success", "result":
<text>}}`` or ``{"error": <text>}``. A ``ToolSchema`` is written as
``{"type": "function", "function": {"name", "description", "parameters"}}`` (the
OpenAI function shape; the crate's own serde names for it are not confirmed here).
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable

from ._codec import encode

#: JSON Schema types of the annotations a parameter may have (others: any value).
_SCHEMA_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    """The signature, with string annotations resolved where they can be; ``None``
    for a callable that has none (some builtins)."""
    try:
        return inspect.signature(fn, eval_str=True)
    except (TypeError, ValueError):
        return None
    except Exception:  # an annotation that does not evaluate: keep it as written
        try:
            return inspect.signature(fn)
        except (TypeError, ValueError):
            return None


def describe_tool(name: str, fn: Callable[..., Any]) -> dict[str, str]:
    """``{"name", "signature", "doc"}`` of an exposed function."""
    signature = _signature(fn)
    text = f"{name}{signature}" if signature is not None else f"{name}(...)"
    return {"name": name, "signature": text, "doc": inspect.getdoc(fn) or ""}


def tool_schema(name: str, fn: Callable[..., Any], doc: str) -> dict[str, Any]:
    """The crate's ``ToolSchema`` of an exposed function (keyword parameters)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    signature = _signature(fn)
    for parameter in signature.parameters.values() if signature is not None else ():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
            continue
        kind = _SCHEMA_TYPES.get(parameter.annotation) if not isinstance(parameter.annotation, str) else None
        properties[parameter.name] = {"type": kind} if kind else {}
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    return {"type": "function", "function": {
        "name": name, "description": doc,
        "parameters": {"type": "object", "properties": properties, "required": required}}}


def answer(body: dict[str, Any], manifest: Callable[[], list[dict[str, str]]],
           call: Callable[[str, dict[str, Any]], Any],
           tools: Callable[[], dict[str, Callable[..., Any]]] | None = None) -> dict[str, Any]:
    """The crate's ``McpReply`` to its ``McpRequest`` ``body``. Never raises: whatever
    goes wrong is the reply's ``error``."""
    op = body.get("op")
    if op == "manifest":
        found = tools() if tools is not None else {}
        return {"manifest": [tool_schema(entry["name"], found.get(entry["name"], _nothing), entry["doc"])
                             for entry in manifest()]}
    if op == "call":
        tool, arguments = body.get("tool"), body.get("arguments")
        if not isinstance(tool, str) or tool.startswith("actors."):
            return {"error": f"bad mcp request: tool {str(tool)[:80]!r}"}
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else (arguments or {})
        except (ValueError, RecursionError) as exc:
            return {"error": f"bad mcp request: arguments are not JSON: {exc}"}
        if not isinstance(parsed, dict):
            return {"error": "bad mcp request: arguments must be a JSON object"}
        try:
            result = call(tool, parsed)
        except Exception as exc:  # reported to the caller, never lost here
            return {"error": f"{type(exc).__name__}: {exc}"}
        text = result if isinstance(result, str) else json.dumps(encode(result), separators=(",", ":"))
        return {"result": {"success": True, "result": text}}
    return {"error": f"bad mcp request: op {str(op)[:40]!r}"}


def _nothing() -> None:
    """(A tool that went away between the listing and its description.)"""
