"""Unambiguous JSON: what a caller sends means one thing, or it is refused.

Python's `json.loads` lets the last of duplicate keys win (`{"dry_run": true, "dry_run": false}`
would run a real containment), reads `NaN`, `Infinity` and `1e999` (infinity) as numbers no
store or service takes, and guesses UTF-16 or UTF-32 from bytes. Here a body is UTF-8 (no byte
order mark), every object's keys are distinct at any depth, and every number is finite and fits
DynamoDB (at most 38 digits, magnitude at most 1e125): anything else is a 400 naming the fault.
"""

import json
import math

from chalicelib.outcomes import InvalidInput

MAX_DIGITS = 38  # DynamoDB's precision: an integer with more digits cannot be stored exactly
MAX_MAGNITUDE = 9.9999999999999999999999999999999999999e125  # DynamoDB's largest number


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


def _distinct(pairs: list) -> dict:
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise InvalidInput("DuplicateKey", f"key {_shown(key)} appears more than once in "
                               "one object; send each key once")
        seen.add(key)
    return dict(pairs)


def _constant(name: str):
    raise InvalidInput("InvalidNumber", f"{name} is not a number JSON allows; send a finite "
                       "number")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise InvalidInput("InvalidNumber", f"number {_shown(text)} has more than "
                           f"{MAX_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise InvalidInput("InvalidNumber", f"number {_shown(text)} is out of range")
    return value


def loads(raw: bytes):
    """The JSON value in `raw` (UTF-8), or InvalidInput saying what makes it ambiguous."""
    try:
        text = raw.decode("utf-8")  # strict: bytes that are not UTF-8 are refused, not guessed
    except UnicodeDecodeError as error:
        raise InvalidInput("InvalidJson", f"body is not UTF-8: {error}") from None
    if text.startswith("\ufeff"):
        raise InvalidInput("InvalidJson", "body starts with a byte order mark; send plain UTF-8")
    try:
        return json.loads(text, object_pairs_hook=_distinct, parse_constant=_constant,
                          parse_int=_integer, parse_float=_float)
    except (ValueError, RecursionError) as error:
        raise InvalidInput("InvalidJson", f"body is not valid JSON: {error}") from None
