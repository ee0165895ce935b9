"""Every answer is checked against its documented shape before anything reads it.

The shapes are `schemas/accesskey-responses.schema.json`, derived from Descope's OpenAPI fragment
(`make schemas`). An answer that does not match is a `ProtocolError`: never read as if it were
right (a search answer without `keys` is not an empty project), never retried. The message names
the endpoint, where in the answer the problem is and what was expected; it quotes no value (an
answer may hold a secret, or megabytes), and caps the names it shows, after `clean` has scrubbed
them (a cut key would no longer be recognised).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from reconcile.errors import ProtocolError
from reconcile.schemas.validators import RESPONSES_SCHEMA, is_valid, load_schema, validator

if TYPE_CHECKING:
    from jsonschema import ValidationError

MAX_NAME = 40  # characters of an object member's name shown in a path
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # half of a UTF-16 pair, written as a JSON escape
_JSON_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)
_RULES = {
    "minLength": "must not be empty",
    "minimum": "is out of range",
    "maximum": "is out of range",
    "anyOf": "has none of the documented types",
}


@cache
def _shapes() -> dict[str, str]:
    endpoints: dict[str, str] = load_schema(RESPONSES_SCHEMA)["x-endpoints"]
    return {endpoint: f"{RESPONSES_SCHEMA}{pointer}" for endpoint, pointer in endpoints.items()}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next(name for kind, name in _JSON_TYPES if isinstance(value, kind))


Clean = Callable[[str], str]


def _short(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[:MAX_NAME] + "…"


def json_path(parts: Iterable[str | int], clean: Clean) -> str:
    """`keys[3].customClaims.team`, names scrubbed, then capped at MAX_NAME characters."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{_short(clean(part))}"
    return text.lstrip(".")


def _describe(error: ValidationError, clean: Clean) -> str:
    where = json_path(error.absolute_path, clean) or "the answer"
    rule: Any = error.validator_value
    instance: Any = error.instance
    if error.validator == "required":
        missing = next(name for name in rule if name not in instance)
        return f"{where}: `{missing}` is missing"
    if error.validator == "type":
        expected = rule if isinstance(rule, list) else [rule]
        return f"{where}: expected {' or '.join(expected)}, got {json_type(instance)}"
    return f"{where}: {_RULES.get(str(error.validator), 'is not as documented')}"


def check(method: str, path: str, body: Any, clean: Clean) -> Any:
    """`body` when it is the documented answer of `method path`; else ProtocolError."""
    shape = _shapes()[f"{method} {path}"]
    if is_valid(shape, body):  # the compiled check is quick; explaining is not
        return body
    from jsonschema.exceptions import best_match  # noqa: PLC0415 (slow to import: only to explain)

    error = best_match(validator(shape).iter_errors(body))
    raise ProtocolError(f"{method} {path}: the answer is not as documented: {_describe(error, clean)}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # `1e400`: no JSON number is infinite
        raise ValueError(text)
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(constant)  # `NaN`, `Infinity`: Python reads them, JSON has no such thing


def decode(method: str, path: str, content: bytearray, content_type: str) -> Any:
    """A 200 answer's body as JSON (an empty body is an empty object); ProtocolError when it is not
    JSON, or holds a string that is not Unicode (a lone surrogate: no file or terminal can take it).
    `content` is emptied once read as text: the keys decoded from a 48 MB answer need not share the
    run's peak memory with its bytes."""
    if not content:
        return {}
    size = len(content)
    encoding = json.detect_encoding(content)
    try:
        try:
            text, raw_surrogate = content.decode(encoding), False
        except UnicodeDecodeError:  # json.loads(bytes) reads a surrogate encoded as such ("surrogatepass")
            text, raw_surrogate = content.decode(encoding, "surrogatepass"), True
        content.clear()
        body = json.loads(text, parse_float=_finite, parse_constant=_not_json)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        kind = content_type.partition(";")[0].strip() or "no content type"
        raise ProtocolError(f"{method} {path}: the answer is not JSON ({_short(kind)}, {size} bytes)") from None
    # A pair is one character; only where a surrogate is written at all is the whole body checked.
    if raw_surrogate or _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError(f"{method} {path}: the answer holds a string that is not Unicode") from None
    return body


def unique_ids(method: str, path: str, keys: Sequence[dict[str, Any]], clean: Clean) -> None:
    """Two keys with one id: which one is the project's? Refuse to guess."""
    seen: set[str] = set()
    for index, key in enumerate(keys):
        if key["id"] in seen:
            where = f"keys[{index}].id: `{_short(clean(key['id']))}` is the id of an earlier key too"
            raise ProtocolError(f"{method} {path}: the answer is not as documented: {where}")
        seen.add(key["id"])


def same_id(method: str, path: str, key: dict[str, Any], expected: str, clean: Clean) -> dict[str, Any]:
    """The key of a load or update answer must be the key asked for."""
    if key["id"] != expected:
        where = f"key.id: asked for `{_short(expected)}`, got `{_short(clean(key['id']))}`"
        raise ProtocolError(f"{method} {path}: the answer is not as documented: {where}")
    return key
