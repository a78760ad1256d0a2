"""How deeply a parsed JSON value nests: the one measure the limits on uploaded JSON
(domain/files.py) and on response_format schemas (domain/response_format.py) apply."""

from __future__ import annotations

from typing import Any


def json_depth(value: Any, stop_after: int | None = None) -> int:
    """The nesting depth of objects and arrays in `value` (a scalar is 0), measured without
    recursion, so no depth can exhaust the stack. With `stop_after`, nothing below that depth
    is walked: the answer is then at most `stop_after + 1`, enough to refuse."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if stop_after is None or level <= stop_after:
                children = node.values() if isinstance(node, dict) else node
                stack.extend((child, level + 1) for child in children)
    return deepest
