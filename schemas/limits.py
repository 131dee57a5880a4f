"""What a command may hold: the limits the gateway checks at the door and the worker decodes
with (docs/protocol.md, "Limits").

A command is one Kafka record, and its events and the entity's state carry what it holds,
so a command is kept well below the broker's default 1 MiB message size. JSON nested
deeper than ``MAX_JSON_DEPTH`` is refused before it is parsed: parsers recurse, and a
value nested a few hundred levels deep cannot be written back out.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, JsonValue, ValidationError

MAX_COMMAND_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
# A whole request, frame or command: its own envelope around such values.
MAX_DOCUMENT_DEPTH = MAX_JSON_DEPTH + 8


class TooDeep(ValueError):
    """JSON nested deeper than :data:`MAX_JSON_DEPTH`."""

    def __init__(self, limit: int = MAX_JSON_DEPTH, what: str = "JSON") -> None:
        super().__init__(f"{what} is nested deeper than the limit of {limit} levels")


def json_depth(raw: str | bytes, stop_after: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``raw`` JSON nests arrays and objects, without parsing it (so without
    recursion); counting stops past ``stop_after``. Malformed JSON gets a number too:
    the parser that follows says what is wrong with it."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if text.count("[") + text.count("{") <= stop_after:
        return min(stop_after, text.count("[") + text.count("{"))  # cannot be deeper
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def check_json(raw: str | bytes, max_bytes: int = MAX_COMMAND_BYTES) -> None:
    """Raise :class:`TooDeep` or :class:`TooLarge` for a whole document (a request, a
    frame, a command) past the limits; the values inside are checked as they are validated,
    which names the field."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise TooLarge(size, max_bytes)
    if json_depth(raw, MAX_DOCUMENT_DEPTH) > MAX_DOCUMENT_DEPTH:
        raise TooDeep(MAX_DOCUMENT_DEPTH, "the document")


class TooLarge(ValueError):
    """A document larger than its limit, in bytes."""

    def __init__(self, size: int, limit: int = MAX_COMMAND_BYTES) -> None:
        super().__init__(f"{size} bytes is larger than the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def _depth_of(value: Any, limit: int) -> int:
    """Nesting depth of a parsed value, iteratively (stops counting past ``limit``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return deepest


def _shallow(value: Any) -> Any:
    if _depth_of(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise TooDeep()
    return value


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null")
    return value


# A JSON value a command carries (task input and results, memory values, metadata).
Json = Annotated[JsonValue, AfterValidator(_shallow)]
# The same, where null has no meaning (a memory value: delete the key instead).
NonNullJson = Annotated[JsonValue, AfterValidator(_not_null), AfterValidator(_shallow)]


def describe(exc: ValidationError, most: int = 5) -> str:
    """A validation error in one line: each problem with the field it is in."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors()[:most]
    )
