"""Payload encoding: typed dataclasses and actor refs inside JSON bodies.

A dataclass-json dataclass travels as ``{"__typed__": "module:QualName", "data": {...}}``
and an ``ActorRef`` as ``{"__actor_ref__": {address}}``. Decoding never imports a
module a message names: a type tag resolves only through the ``resolve`` function the
receiver passes (its declared handler types), or to a class whose module the receiving
process has already imported; anything else stays a plain dict.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any, Callable

from actors_runtime.address import Address
from actors_runtime.errors import InvalidSpec

#: Key marking a typed payload.
TYPED = "__typed__"
#: Key marking an actor ref.
REF = "__actor_ref__"

_SCALARS = (str, int, float, bool, type(None))
#: The exact types a flat payload's values may have to be taken as they are (a float
#: is checked for NaN and infinities, a subclass of any of them goes the whole way).
_PLAIN = frozenset({str, int, bool, type(None)})

#: Payloads nest this deep at most (lists, dicts, dataclasses): deep enough for any
#: real document, and shallow enough that every reader (JSON decoders, ``decode``)
#: takes it apart within Python's recursion limit, wherever its stack stands.
MAX_NESTING = 200


def type_tag(cls: type) -> str:
    """``module:QualName`` of a payload (or actor) class.

    A class defined in the script being run is ``__main__`` in the parent and
    ``__mp_main__`` in the workers (multiprocessing imports the script under that name
    and makes ``__main__`` point to it), so both are written ``__main__``.
    """
    module = "__main__" if cls.__module__ == "__mp_main__" else cls.__module__
    return f"{module}:{cls.__qualname__}"


def encode(value: Any) -> Any:
    """Turn ``value`` into plain JSON data, tagging dataclasses and refs.

    Raises:
        InvalidSpec: a value cannot be sent (not JSON-able, not a dataclass, not a ref,
            a float that is NaN or infinite), or it nests deeper than ``MAX_NESTING`` levels (a circular one does too).
    """
    if type(value) is dict:  # most payloads: string keys to scalars, copied as they are
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _PLAIN
                                        and (type(item) is not float or not math.isfinite(item))):
                break
        else:
            return dict(value)
    return _encode(value, 0)


def _encode(value: Any, depth: int) -> Any:
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidSpec("payload", f"{value!r} is not a JSON number (JSON has no NaN or Infinity)")
        return value
    if depth >= MAX_NESTING:
        raise InvalidSpec("payload", f"it nests deeper than {MAX_NESTING} levels (or refers to itself)")
    if isinstance(value, dict):
        return {_key(k): _encode(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, depth + 1) for v in value]
    to_ref = getattr(value, "__actor_address__", None)
    if to_ref is not None:
        return {REF: to_ref().to_dict()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        try:
            data = to_dict(encode_json=True) if to_dict else dataclasses.asdict(value)
        except RecursionError:
            raise InvalidSpec("payload", f"a {type(value).__name__} that refers to itself cannot be sent") from None
        return {TYPED: type_tag(type(value)), "data": _encode(data, depth + 1)}
    raise InvalidSpec("payload", f"a {type(value).__name__} cannot be sent (use JSON data, "
                      "a dataclass, or an ActorRef)")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float, bool)) or key is None:
        return str(key) if not isinstance(key, bool) else str(key).lower()
    raise InvalidSpec("payload", f"dict key {key!r} is not a string")


def imported_type(tag: str) -> type | None:
    """The class a tag names if its module is already imported here (never imports)."""
    module_name, _, qualname = tag.partition(":")
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if target is None:
            return None
        target = getattr(target, part, None)
    return target if isinstance(target, type) and dataclasses.is_dataclass(target) else None


def decode(value: Any, resolve: Callable[[str], type | None], make_ref: Callable[[Address], Any]) -> Any:
    """Invert :func:`encode`. Unknown type tags stay dicts (with decoded contents)."""
    if isinstance(value, dict):
        if len(value) == 1 and REF in value:
            try:
                return make_ref(Address.from_dict(value[REF]))
            except InvalidSpec:
                return value
        if len(value) == 2 and TYPED in value and "data" in value:
            cls = resolve(str(value[TYPED]))
            data = decode(value["data"], resolve, make_ref)
            if cls is not None and isinstance(data, dict):
                return _build(cls, data)
            return {TYPED: value[TYPED], "data": data}
        return {k: decode(v, resolve, make_ref) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, resolve, make_ref) for v in value]
    return value


def _build(cls: type, data: dict[str, Any]) -> Any:
    from_dict = getattr(cls, "from_dict", None)
    if from_dict is not None:
        return from_dict(data)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
