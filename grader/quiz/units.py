"""Units after a number: the unit families a numeric question may declare, and the words a count
or a plain number may carry without changing its value (``55 entries``, ``20x``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .numbers import Unreadable, format_number, parse_number

_LN2 = math.log(2)

_BYTE_WORDS = {
    "b": 1, "byte": 1, "bytes": 1,
    "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "bit": 1 / 8, "bits": 1 / 8,
}
for _prefix, _dec, _bin in (("kilo", 1e3, "kibi"), ("mega", 1e6, "mebi"), ("giga", 1e9, "gibi"),
                            ("tera", 1e12, "tebi")):
    _power = {"kilo": 10, "mega": 20, "giga": 30, "tera": 40}[_prefix]
    for _s in ("byte", "bytes"):
        _BYTE_WORDS[_prefix + _s] = _dec
        _BYTE_WORDS[_bin + _s] = 2**_power

# Multipliers of a count (and of a plain number): the word and how it is echoed back.
COUNT_WORDS = {
    "k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "mn": 1e6,
    "b": 1e9, "bn": 1e9, "billion": 1e9, "t": 1e12, "trillion": 1e12,
}
_COUNT_NAMES = {1e3: "thousand", 1e6: "million", 1e9: "billion", 1e12: "trillion"}

# Each family: its base unit's display name and the words accepted after a number (multipliers).
UNIT_FAMILIES: dict[str, tuple[str, dict[str, float]]] = {
    "bytes": ("bytes", _BYTE_WORDS),
    "bits": ("bits", {"bit": 1, "bits": 1, "nat": 1 / _LN2, "nats": 1 / _LN2}),
    "nats": ("nats", {"nat": 1, "nats": 1, "bit": _LN2, "bits": _LN2}),
    "count": ("", COUNT_WORDS),
    "percent": ("%", {"percent": 1, "pct": 1}),
}
# Nouns naming the thing counted ("1.4T tokens", "55 entries", "128 dims", "20 times"): they do
# not change the number. A count or a plain-number question accepts them.
COUNT_NOUNS = {
    "token", "tokens", "param", "params", "parameter", "parameters", "weight", "weights",
    "update", "updates", "step", "steps", "position", "positions", "entry", "entries",
    "merge", "merges", "example", "examples", "element", "elements", "float", "floats",
    "number", "numbers", "key", "keys", "score", "scores", "bit", "bits", "times", "x",
    "dim", "dims", "dimension", "dimensions", "head", "heads", "layer", "layers", "epoch",
    "epochs", "flop", "flops", "value", "values", "row", "rows", "column", "columns",
    "sub", "sublayer", "sublayers", "sub-layers", "iteration", "iterations", "fold", "tokens/param",
}
# A plain-number question takes the nouns, but not a unit word ("3 bits" needs a unit family).
PLAIN_NOUNS = COUNT_NOUNS - {"bit", "bits"}
_DECIMAL_BYTES = {"kb": "kib", "mb": "mib", "gb": "gib", "tb": "tib", "kilobyte": "kibibyte",
                  "kilobytes": "kibibytes", "megabyte": "mebibyte", "megabytes": "mebibytes",
                  "gigabyte": "gibibyte", "gigabytes": "gibibytes", "terabyte": "tebibyte",
                  "terabytes": "tebibytes"}
BINARY_NAME = {"kb": "KiB", "mb": "MiB", "gb": "GiB", "tb": "TiB", "kilobyte": "KiB",
               "kilobytes": "KiB", "megabyte": "MiB", "megabytes": "MiB", "gigabyte": "GiB",
               "gigabytes": "GiB", "terabyte": "TiB", "terabytes": "TiB"}


def known_units() -> list[str]:
    """The unit families a bank may declare."""
    return sorted(UNIT_FAMILIES)


@dataclass
class ReadNumber:
    """A numeric answer read in the question's base unit."""

    value: float  # in the question's base unit
    read_as: str  # how it was understood, for feedback
    alternative: float | None = None  # e.g. MB read as MiB
    number: float | None = None  # the number before its unit word (for "right number, wrong unit")
    unit_word: str = ""  # the unit word that converted it, if any
    sig: int | None = None  # significant figures as written (a plain number only)
    decimals: int | None = None  # decimal places as written (no unit factor, no %)
    percent: bool = False  # a '%' was typed


def _drop_nouns(words: list[str], nouns: set[str]) -> list[str]:
    out, skip = [], False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w == "per" and i + 1 < len(words):  # "flops per byte", "tokens per parameter"
            skip = True
            continue
        if w not in nouns:
            out.append(w)
    return out


def read_number(text: str, unit: str | None = None) -> ReadNumber:
    """Read a numeric answer in the base unit of ``unit`` (``None``: a plain number)."""
    parsed = parse_number(text)
    value = parsed.value
    words = parsed.words
    decimals = parsed.decimals
    if unit == "percent" and parsed.percent:
        value *= 100
    elif parsed.percent:
        decimals = None
    base = dict(sig=parsed.sig, percent=parsed.percent)
    if not words:
        return ReadNumber(value, format_number(value), decimals=decimals, **base)
    if unit in (None, "count"):
        words = _drop_nouns(words, COUNT_NOUNS if unit == "count" else PLAIN_NOUNS)
        if not words:
            return ReadNumber(value, format_number(value), decimals=decimals, **base)
    if unit is None:
        if len(words) == 1 and words[0] in COUNT_WORDS:
            factor = COUNT_WORDS[words[0]]
            result = value * factor
            return ReadNumber(result, f"{format_number(value)} {_COUNT_NAMES[factor]} = "
                              f"{format_number(result)}", **base)
        raise Unreadable(f"'{' '.join(words)}' after the number: this question takes a plain "
                         "number")
    base_name, table = UNIT_FAMILIES[unit]
    if len(words) > 1 or words[0] not in table:
        allowed = ", ".join(sorted({w for w in table if len(w) <= 4 or w.endswith("s")}))
        raise Unreadable(f"'{' '.join(words)}' is not a unit this question understands ({allowed})")
    word = words[0]
    factor = table[word]
    result = value * factor
    if unit == "count":
        # "38.4M" is echoed "38.4 million", never "38.4 m" (which reads like metres).
        shown = f"{format_number(value)} {_COUNT_NAMES[factor]}"
    else:
        shown = f"{format_number(value)} {word}"
    read_as = shown if factor == 1 else f"{shown} = {format_number(result)} {base_name}".rstrip()
    alternative = None
    if unit == "bytes" and word in _DECIMAL_BYTES:
        alternative = value * table[_DECIMAL_BYTES[word]]
    return ReadNumber(result, read_as, alternative, number=value, unit_word=word,
                      decimals=decimals if factor == 1 else None, **base)
