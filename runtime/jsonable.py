"""The dataclasses-json API of the wire classes, imported on first use.

The runtime reads and writes its wire classes (messages, specs, lease records) with
its own codecs; ``to_json``, ``from_json``, ``to_dict``, ``from_dict`` and ``schema``
are the documented dataclasses-json way for users to do the same. Importing
dataclasses-json also imports marshmallow and ``importlib.metadata``: about 40 ms and
6 MB of every worker process, almost none of which ever calls these methods. So the
classes take their methods from :class:`JsonMixin`, which imports the library the first
time one is called, and the per-field options are written out by :func:`field_options`
(the metadata dataclasses-json's ``config()`` returns) so defining a class needs no
import either.
"""

from __future__ import annotations

import json
from typing import Any, Callable, TypeVar

T = TypeVar("T", bound="JsonMixin")


def field_options(*, name: str | None = None, exclude: bool = False,
                  omit_none: bool = False) -> dict[str, Any]:
    """Field metadata as ``dataclasses_json.config(field_name=name, exclude=...)`` gives.

    Args:
        name: the field's JSON key, when it is not the attribute name.
        exclude: leave the field out of ``to_dict`` / ``to_json``.
        omit_none: leave the field out when its value is ``None`` (an optional field
            added later: documents without it stay byte-for-byte as before).
    """
    options: dict[str, Callable[[Any], Any]] = {}
    if name is not None:
        options["letter_case"] = lambda _: name
    if exclude:
        options["exclude"] = lambda _: True
    elif omit_none:
        options["exclude"] = lambda value: value is None
    return {"dataclasses_json": options}


def _mixin() -> Any:
    from dataclasses_json import DataClassJsonMixin

    return DataClassJsonMixin


class JsonMixin:
    """``DataClassJsonMixin``'s methods, for a dataclass, without importing it up front."""

    #: Read by dataclasses-json (class-wide options; none here).
    dataclass_json_config: dict[str, Any] | None = None

    def to_json(self, **kwargs: Any) -> str:
        return _mixin().to_json(self, **kwargs)  # type: ignore[no-any-return]

    def to_dict(self, encode_json: bool = False) -> dict[str, Any]:
        return _mixin().to_dict(self, encode_json=encode_json)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls: type[T], s: str | bytes, *, infer_missing: bool = False, **kwargs: Any) -> T:
        return cls.from_dict(json.loads(s, **kwargs), infer_missing=infer_missing)

    @classmethod
    def from_dict(cls: type[T], kvs: Any, *, infer_missing: bool = False) -> T:
        return _mixin().from_dict.__func__(cls, kvs, infer_missing=infer_missing)  # type: ignore[no-any-return]

    @classmethod
    def schema(cls, **kwargs: Any) -> Any:
        return _mixin().schema.__func__(cls, **kwargs)
