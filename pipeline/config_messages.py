"""Schema violations in words: one sentence per error naming the key, the value found and what was expected.

:func:`describe` turns a :class:`jsonschema.ValidationError` into e.g.
``training.learning_rate: nan is not valid; expected a number > 0`` or
``unknown key 'epoch' in training; did you mean 'epochs'? (valid keys: ...)``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import jsonschema

#: Schema types in words, for messages.
_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "null": "null",
    "object": "a mapping",
    "array": "a list",
}


def _expected(schema: Any) -> str:
    """What a schema accepts, in words (``one of ['auto', 'none'] or a list (each entry a number >= 0)``)."""
    if not isinstance(schema, Mapping):
        return "a valid value"
    if "enum" in schema:
        return f"one of {schema['enum']}"
    if "const" in schema:
        return repr(schema["const"])
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return " or ".join(_expected(s) for s in alternatives)
    kinds = schema.get("type", [])
    words = []
    for kind in [kinds] if isinstance(kinds, str) else list(kinds):
        word = _TYPE_WORDS.get(kind, kind)
        if kind in ("integer", "number"):
            bounds = [
                f"{op} {schema[key]}"
                for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
                if key in schema
            ]
            word += (" " + " and ".join(bounds)) if bounds else ""
        elif kind == "array" and "items" in schema:
            word += f" (each entry {_expected(schema['items'])})"
        words.append(word)
    return " or ".join(words) or "a valid value"


def _count(instance: Any) -> str:
    """``1 entry``, ``3 entries``."""
    return f"{len(instance)} entr{'y' if len(instance) == 1 else 'ies'}" if hasattr(instance, "__len__") else "no entries"


def describe(error: jsonschema.ValidationError) -> str:
    """One clear sentence for a schema violation, naming the key, the value found and what was expected."""
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        extra = sorted(k for k in set(error.instance) - set(allowed) if not any(re.search(p, str(k)) for p in patterns))
        parts = []
        for key in extra:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            parts.append(f"unknown key {key!r} in {where}{hint}")
        valid = [f"valid keys: {', '.join(allowed)}"] if allowed else []
        valid += [f"keys must match {', '.join(patterns)}"] if patterns else []
        return "; ".join(parts) + f" ({'; '.join(valid) or 'no keys allowed'})"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "type":
        return f"{where}: {error.instance!r} has the wrong type, expected {_expected({'type': error.validator_value})}"
    if error.validator in ("oneOf", "anyOf"):
        return f"{where}: {error.instance!r} is not valid; expected {_expected(schema)}"
    if error.validator in ("minItems", "maxItems", "minProperties", "maxProperties"):
        low, high = (schema.get(k) for k in (("minItems", "maxItems") if "Items" in str(error.validator) else ("minProperties", "maxProperties")))
        wanted = f"exactly {low}" if low is not None and low == high else f"at least {low}" if str(error.validator).startswith("min") else f"at most {high}"
        return f"{where}: {error.instance!r} has {_count(error.instance)}, expected {wanted}"
    return f"{where}: {error.message}"
