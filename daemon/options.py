"""Typed option tables: a frozen dataclass whose fields carry their defaults and their rules.

The daemon's config sections and each source kind's options
(:mod:`genretag.daemon.sources.registry`) are such dataclasses.  :func:`check_options`
turns a table of raw values (TOML values, or the text of a spec's ``?key=value``
query) into field values and reports every problem at once, each with its key,
so that ``genretag check-config`` can say all that is wrong in one go.

A field's rule is ``option(default, test, "must be ...")``: ``test`` runs only
on a value of the field's type, and the message is what the operator reads.
A class may add checks across fields with a ``problems()`` method returning
``(key, message)`` pairs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
_INTEGER = re.compile(r"[+-]?\d+")

Problem = tuple[str, str]
"""``(key, message)``: the message reads after the key (``must be 1..64 (got 65)``)."""


def option(default: Any, test: Callable[[Any], bool] | None = None, message: str = "") -> Any:
    """A dataclass field with ``default`` whose values must pass ``test`` (else: ``message``)."""
    return dataclasses.field(default=default, metadata={"rule": (test, message)} if test else {})


def typed_value(key: str, value: Any, hint: Any) -> tuple[Any, str | None]:
    """``value`` (as TOML gives it) converted to the field's type, or an error message with ``key``."""
    for typ in getattr(hint, "__args__", (hint,)):  # X | None: None is never a TOML value
        if type(value) is typ or (typ is float and type(value) is int):
            return (float(value) if typ is float else value), None
    names = " or ".join(t.__name__ for t in getattr(hint, "__args__", (hint,)) if t is not type(None))
    return None, f"{key}: must be {names}, got {type(value).__name__} {value!r}"


def text_value(text: str, hint: Any) -> tuple[Any, str | None]:
    """``text`` (a query string's value) as the field's type, or the message (``must be a number ...``)."""
    types = [t for t in getattr(hint, "__args__", (hint,)) if t is not type(None)]
    typ = types[0]
    if typ is bool:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS, None
        return None, f"must be 0 or 1, got {text!r}"
    if typ is int:
        if _INTEGER.fullmatch(text.strip()):
            return int(text), None
        return None, f"must be a whole number, got {text!r}"
    if typ is float:
        try:
            return float(text), None
        except ValueError:
            return None, f"must be a number, got {text!r}"
    return text, None


def fields_of(cls: type) -> dict[str, Any]:
    """The option names of ``cls`` and their type hints, in declaration order."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def check_options(
    cls: type, raw: Mapping[str, Any], *, text: bool = False
) -> tuple[dict[str, Any], list[Problem]]:
    """The checked values of ``raw`` (the keys it has) and every problem, as ``(key, message)``.

    ``text``: the values are strings to convert (a spec's query), else TOML values.
    Unknown keys are problems; a value of the wrong type or against its rule is left out of the values.
    """
    hints = fields_of(cls)
    rules = {f.name: f.metadata["rule"] for f in dataclasses.fields(cls) if "rule" in f.metadata}
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for key in raw:
        if key not in hints:
            problems.append((key, f"unknown option (known: {', '.join(hints) or 'none'})"))
            continue
        if text:
            value, error = text_value(raw[key], hints[key])
        else:
            value, error = typed_value(key, raw[key], hints[key])
            error = error and error[len(key) + 2 :]
        if error:
            problems.append((key, error))
            continue
        test, message = rules.get(key, (None, ""))
        if test is not None and value is not None and not test(value):
            problems.append((key, f"{message} (got {value!r})"))
            continue
        values[key] = value
    return values, problems


def build_options(cls: type, values: Mapping[str, Any]) -> tuple[Any, list[Problem]]:
    """``cls(**values)`` and the problems of its ``problems()`` method (checks across fields), if any."""
    options = cls(**values)
    check = getattr(options, "problems", None)
    return options, (list(check()) if check is not None else [])


def options_problems(options: Any) -> list[Problem]:
    """Every problem of a built options object: each field against its rule, then ``problems()``."""
    found: list[Problem] = []
    for f in dataclasses.fields(options):
        test, message = f.metadata.get("rule", (None, ""))
        value = getattr(options, f.name)
        if test is not None and value is not None and not test(value):
            found.append((f.name, f"{message} (got {value!r})"))
    check = getattr(options, "problems", None)
    return found + (list(check()) if check is not None and not found else [])


def check_built(options: Any, owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` (``url source 'radio'``) for the first problem of ``options``."""
    problems = options_problems(options)
    if problems:
        key, message = problems[0]
        raise ValueError(f"{owner}: {key} {message}")
