"""Reading and checking learners' answers. Nothing a learner types is ever evaluated as code.

Numbers go through a small recursive-descent parser over a fixed grammar::

    answer  := expr unit*
    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('+' | '-' | '√') unary | power
    power   := postfix (('^' | '**') unary)?       # right-associative; -2^2 = -4
    postfix := atom '%'?                           # 12.5% = 0.125
    atom    := NUMBER | 'pi' | 'e' | FUNC '(' expr ')' | '(' expr ')'
    FUNC    := ln | log (natural) | log2 | log10 | sqrt | exp

Accepted forms: ``2.99``, ``3``, ``3e0``, ``.5``, ``-0.5``, ``1/8``, ``12.5%``, ``ln(20)``,
``log2(8)``, ``sqrt(64)``, ``√64``, ``exp(1)``, ``2^10``, ``2**10``, ``2*12*1024*768*4`` and
``1,024`` / ``124,439,808``: a comma is read only as a thousands separator (groups of exactly three
digits), so ``1,5`` is refused rather than guessed at. ``×``, ``·``, ``÷`` and the minus sign ``−``
are read as ``*``, ``*``, ``/`` and ``-``. ``^`` is a power, never XOR. ``log`` is the natural log,
as in Python and numpy.

After the number may come unit words, for questions that declare a unit family (bytes, bits, nats,
count, percent); without a unit the answer is in the question's base unit. Anything else is
*unreadable*: the learner is told their answer could not be read, which is not a wrong answer.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from .model import Instance, Tolerance, Verdict

MAX_LENGTH = 200
MAX_DEPTH = 40
FORMS_HELP = "2.99, 1/8, 12.5%, ln(20), log2(8), sqrt(64), 2^10 or 1,024"


class Unreadable(ValueError):
    """The answer could not be read; the message says why, in the learner's terms."""


# ---------------------------------------------------------------------------- numbers

_NUMBER = re.compile(
    r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_OPS = ("**", "+", "-", "*", "/", "^", "(", ")", "%", "√")
_REPLACE = {"−": "-", "–": "-", "×": "*", "·": "*", "⋅": "*", "÷": "/", "π": "pi", "\u00a0": " "}

FUNCTIONS = {
    "ln": math.log,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "sqrt": math.sqrt,
    "exp": math.exp,
}
CONSTANTS = {"pi": math.pi, "e": math.e}


@dataclass
class _Tok:
    kind: str  # "num", "id", "op"
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < len(text) and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            assert m is not None
            tok = m.group(0)
            end = m.end()
            if text[end:end + 1] == "," and text[end + 1:end + 2].isdigit():
                raise Unreadable(
                    f"'{text[i:end + 2]}…': use '.' for decimals; a comma may only group "
                    "thousands, as in 1,024"
                )
            toks.append(_Tok("num", tok, i))
            i = end
            continue
        m = _IDENT.match(text, i)
        if m:
            toks.append(_Tok("id", m.group(0), i))
            i = m.end()
            continue
        for op in _OPS:
            if text.startswith(op, i):
                toks.append(_Tok("op", op, i))
                i += len(op)
                break
        else:
            raise Unreadable(f"unexpected character {ch!r}")
    return toks


def _check_finite(x: float) -> float:
    if isinstance(x, complex) or not math.isfinite(x):
        raise Unreadable("the number is too large or undefined")
    return x


class _Parser:
    def __init__(self, toks: list[_Tok]):
        self.toks = toks
        self.i = 0
        self.depth = 0
        self.percent = False

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take_op(self, *ops: str) -> str | None:
        t = self.peek()
        if t is not None and t.kind == "op" and t.text in ops:
            self.i += 1
            return t.text
        return None

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Unreadable("too deeply nested")

    def expr(self) -> float:
        self.enter()
        value = self.term()
        while (op := self.take_op("+", "-")) is not None:
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        self.depth -= 1
        return _check_finite(value)

    def term(self) -> float:
        value = self.unary()
        while (op := self.take_op("*", "/")) is not None:
            rhs = self.unary()
            if op == "*":
                value = _check_finite(value * rhs)
            elif rhs == 0:
                raise Unreadable("division by zero")
            else:
                value = value / rhs
        return value

    def unary(self) -> float:
        self.enter()
        op = self.take_op("+", "-", "√")
        if op == "-":
            value = -self.unary()
        elif op == "+":
            value = self.unary()
        elif op == "√":
            value = _apply("sqrt", self.unary())
        else:
            value = self.power()
        self.depth -= 1
        return value

    def power(self) -> float:
        base = self.postfix()
        if self.take_op("^", "**") is not None:
            exponent = self.unary()
            if abs(exponent) > 4096:
                raise Unreadable("the exponent is too large")
            if base == 0 and exponent < 0:
                raise Unreadable("division by zero")
            try:
                value = base**exponent
            except OverflowError:
                raise Unreadable("the number is too large") from None
            if isinstance(value, complex):
                raise Unreadable("a negative number to a fractional power is undefined")
            return _check_finite(float(value))
        return base

    def postfix(self) -> float:
        value = self.atom()
        if self.take_op("%") is not None:
            self.percent = True
            value = value / 100
        return value

    def atom(self) -> float:
        t = self.peek()
        if t is None:
            raise Unreadable("it ends too early")
        if t.kind == "num":
            self.i += 1
            return _check_finite(float(t.text.replace(",", "")))
        if t.kind == "op" and t.text == "(":
            self.i += 1
            value = self.expr()
            if self.take_op(")") is None:
                raise Unreadable("a '(' is not closed")
            return value
        if t.kind == "id":
            name = t.text.lower()
            if name in FUNCTIONS:
                self.i += 1
                if self.take_op("(") is None:
                    raise Unreadable(f"write {name}(...) with parentheses")
                arg = self.expr()
                if self.take_op(")") is None:
                    raise Unreadable(f"the '(' after {name} is not closed")
                return _apply(name, arg)
            if name in CONSTANTS:
                self.i += 1
                return CONSTANTS[name]
            raise Unreadable(f"'{t.text}' is not a number or a known function")
        raise Unreadable(f"unexpected '{t.text}'")


def _apply(name: str, arg: float) -> float:
    if name in ("ln", "log", "log2", "log10") and arg <= 0:
        raise Unreadable(f"{name} of a number <= 0 is undefined")
    if name == "sqrt" and arg < 0:
        raise Unreadable("the square root of a negative number is undefined")
    try:
        return _check_finite(FUNCTIONS[name](arg))
    except OverflowError:
        raise Unreadable("the number is too large") from None


@dataclass
class ParsedNumber:
    value: float
    words: list[str]  # trailing unit words, lower-cased
    percent: bool  # a '%' was used (and already divided by 100)


def parse_number(text: str) -> ParsedNumber:
    """Parse a typed number with optional trailing unit words; :class:`Unreadable` otherwise."""
    if not isinstance(text, str):
        text = str(text)
    text = text.strip()
    if not text:
        raise Unreadable("the answer is empty")
    if len(text) > MAX_LENGTH:
        raise Unreadable(f"the answer is longer than {MAX_LENGTH} characters")
    for a, b in _REPLACE.items():
        text = text.replace(a, b)
    toks = _tokenize(text)
    parser = _Parser(toks)
    value = parser.expr()
    words = []
    for t in toks[parser.i :]:
        if t.kind == "id":
            words.append(t.text.lower())
        elif t.kind == "op" and t.text == "%" and not words:
            parser.percent = True
            value /= 100
        elif t.kind == "num":
            raise Unreadable("two numbers in a row (write 1024 or 1,024, not 1 024)")
        else:
            raise Unreadable(f"unexpected '{t.text}'")
    return ParsedNumber(value, words, parser.percent)


# ---------------------------------------------------------------------------- units

_LN2 = math.log(2)

# Each family: its base unit's display name and the words accepted after a number (multipliers).
UNIT_FAMILIES: dict[str, tuple[str, dict[str, float]]] = {
    "bytes": (
        "bytes",
        {
            "b": 1, "byte": 1, "bytes": 1,
            "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
            "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
            "bit": 1 / 8, "bits": 1 / 8,
        },
    ),
    "bits": ("bits", {"bit": 1, "bits": 1, "nat": 1 / _LN2, "nats": 1 / _LN2}),
    "nats": ("nats", {"nat": 1, "nats": 1, "bit": _LN2, "bits": _LN2}),
    "count": (
        "",
        {
            "k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "mn": 1e6,
            "b": 1e9, "bn": 1e9, "billion": 1e9, "t": 1e12, "trillion": 1e12,
        },
    ),
    "percent": ("%", {"percent": 1, "pct": 1}),
}
# Nouns a count may carry ("1.4T tokens"); they do not change the number.
COUNT_NOUNS = {
    "token", "tokens", "param", "params", "parameter", "parameters", "weight", "weights",
    "update", "updates", "step", "steps", "position", "positions", "entry", "entries",
    "merge", "merges", "example", "examples", "element", "elements", "float", "floats",
    "number", "numbers", "key", "keys", "score", "scores", "bit", "bits", "times", "x",
}
_DECIMAL_BYTES = {"kb": "kib", "mb": "mib", "gb": "gib", "tb": "tib"}


def known_units() -> list[str]:
    return sorted(UNIT_FAMILIES)


@dataclass
class ReadNumber:
    value: float  # in the question's base unit
    read_as: str  # how it was understood, for feedback
    alternative: float | None = None  # e.g. MB read as MiB


def read_number(text: str, unit: str | None = None) -> ReadNumber:
    """Read a numeric answer in the base unit of ``unit`` (``None``: a plain number)."""
    parsed = parse_number(text)
    value = parsed.value
    words = parsed.words
    if unit == "percent" and parsed.percent:
        value *= 100
    if not words:
        return ReadNumber(value, format_number(value))
    if unit is None:
        raise Unreadable(f"'{' '.join(words)}' after the number: this question takes a plain "
                         "number")
    base_name, table = UNIT_FAMILIES[unit]
    if unit == "count":
        words = [w for w in words if w not in COUNT_NOUNS]
    if not words:
        return ReadNumber(value, format_number(value))
    if len(words) > 1 or words[0] not in table:
        allowed = ", ".join(sorted({w for w in table if len(w) <= 4 or w.endswith("s")}))
        raise Unreadable(f"'{' '.join(words)}' is not a unit this question understands ({allowed})")
    word = words[0]
    factor = table[word]
    result = value * factor
    shown = f"{format_number(value)} {word}"
    read_as = shown if factor == 1 else f"{shown} = {format_number(result)} {base_name}".rstrip()
    alternative = None
    if unit == "bytes" and word in _DECIMAL_BYTES:
        alternative = value * table[_DECIMAL_BYTES[word]]
    return ReadNumber(result, read_as, alternative)


def format_number(x: float) -> str:
    """A number as people write it: ``18,874,368``, ``2.996``, ``0.0003``, ``1.2e-07``."""
    if x is None:
        return ""
    if isinstance(x, bool):
        x = int(x)
    if float(x).is_integer() and abs(x) < 1e16:
        return f"{int(x):,}"
    ax = abs(x)
    if 1e-4 <= ax < 1e16:
        s = f"{x:.4g}" if ax < 1e6 else f"{x:,.1f}"
        if "e" in s:
            s = f"{x:.6f}".rstrip("0")
        return s
    return f"{x:.4g}"


# ---------------------------------------------------------------------------- text

_ARTICLES = {"a", "an", "the"}
_SYMBOLS = {"√": " sqrt ", "×": " x ", "−": "-", "–": "-", "—": "-", "π": " pi "}


def normalize_text(text: str) -> str:
    """Case, whitespace, punctuation and articles do not matter: ``"The Decoder-only!"`` →
    ``"decoder only"``."""
    text = unicodedata.normalize("NFKC", str(text))
    for a, b in _SYMBOLS.items():
        text = text.replace(a, b)
    text = text.casefold()
    text = re.sub(r"[\W_]+", " ", text)
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def text_matches(given: str, accepted: list[str]) -> bool:
    g = normalize_text(given)
    if not g:
        return False
    for a in accepted:
        n = normalize_text(a)
        if g == n or g.replace(" ", "") == n.replace(" ", ""):
            return True
    return False


# ---------------------------------------------------------------------------- choices

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def letter(i: int) -> str:
    return LETTERS[i]


def parse_choices(text: str, choices: list[str], multiple: bool) -> list[int]:
    """The chosen indices: letters (``b``, ``(b)``, ``b) its text``, ``a, c``, ``a c``, ``ac``) or
    the text of a choice."""
    raw = str(text).strip()
    if not raw:
        raise Unreadable("the answer is empty")
    n = len(choices)
    span = f"a–{letter(n - 1)}"
    by_text = {normalize_text(c): i for i, c in enumerate(choices)}
    low = raw.lower()
    labelled = re.fullmatch(r"\(?([a-z])[).:]\s+.+", low, flags=re.S)
    parts = [p for p in re.split(r"[\s,;/&+()\[\]]+", low) if p and p != "and"]
    letters: list[str] | None = None
    if labelled and not multiple:
        letters = [labelled.group(1)]
    elif parts and all(len(p) == 1 and p.isalpha() and p.isascii() for p in parts):
        letters = parts
    elif (
        multiple
        and len(parts) == 1
        and re.fullmatch(r"[a-z]{2,26}", parts[0])
        and len(set(parts[0])) == len(parts[0])
        and normalize_text(raw) not in by_text
    ):
        letters = list(parts[0])
    if letters is not None:
        picked: list[int] = []
        for p in letters:
            idx = LETTERS.index(p)
            if idx >= n:
                raise Unreadable(f"there is no choice '{p}'; answer with a letter {span}")
            if idx not in picked:
                picked.append(idx)
        if not multiple and len(picked) > 1:
            raise Unreadable(f"pick one choice ({span}), not several")
        return sorted(picked)
    # The text of a choice (several separated by ';' or new lines for multiple choice).
    pieces = [raw] if not multiple else [p for p in re.split(r"[;\n]+", raw) if p.strip()]
    picked = []
    for piece in pieces:
        idx = by_text.get(normalize_text(piece))
        if idx is None:
            raise Unreadable(f"answer with the letter of a choice ({span})")
        if idx not in picked:
            picked.append(idx)
    return sorted(picked)


# ---------------------------------------------------------------------------- checking


def unreadable_message(given: str, reason: str, inst: Instance | None = None) -> str:
    if inst is not None and inst.kind in ("single", "multiple"):
        how = f"the letter of a choice (a–{letter(len(inst.choices) - 1)})"
        if inst.kind == "multiple":
            how = "the letters of all correct choices, e.g. a, c"
        return f"Could not read your answer {given!r}: {reason}. Answer with {how}."
    return f"Could not read your answer {given!r}: {reason}. Write a number such as {FORMS_HELP}."


def check_answer(inst: Instance, given: object) -> Verdict:
    """Check one answer against an instance. Never raises for bad input: that is ``unreadable``."""
    text = "" if given is None else given if isinstance(given, str) else _join(given)
    text = text.strip()
    try:
        if inst.kind == "numeric":
            return _check_numeric(inst, text)
        if inst.kind in ("single", "multiple"):
            return _check_choices(inst, text)
        return _check_text(inst, text)
    except Unreadable as exc:
        message = unreadable_message(text, str(exc), inst)
        return Verdict("unreadable", message, given=text, accepted=inst.display)


def _join(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _check_numeric(inst: Instance, text: str) -> Verdict:
    assert inst.value is not None
    got = read_number(text, inst.unit)
    expected = inst.value
    tol = inst.tolerance
    if tol.accepts(got.value, expected):
        return Verdict("correct", "Correct.", text, got.read_as, inst.display)
    if got.alternative is not None and tol.accepts(got.alternative, expected):
        word = got.read_as.split()[1]
        binary = {"kb": "KiB", "mb": "MiB", "gb": "GiB", "tb": "TiB"}[word]
        return Verdict(
            "correct",
            f"Correct (read as {binary}; strictly, {word.upper()} means a power of 1000 and "
            f"{binary} a power of 1024).",
            text, got.read_as, inst.display,
        )
    message = f"Not quite: you answered {got.read_as}; the answer is {inst.display}."
    for mistake in inst.mistakes:
        if Tolerance(abs=tol.abs, rel=max(tol.rel, 1e-9)).accepts(got.value, mistake.value):
            message += " " + mistake.message
            break
    else:
        width = tol.width(expected)
        if width and abs(got.value - expected) <= 5 * width:
            message += (f" Close, but outside the tolerance ({tol.describe(expected)}): keep "
                        "more digits.")
        elif expected and tol.accepts(got.value * 100, expected) and inst.unit == "percent":
            message += " That looks like a fraction: this question asks for a percentage."
        elif expected and inst.unit != "percent" and tol.accepts(got.value / 100, expected):
            message += " That is 100 times too large: give a fraction, not a percentage."
    return Verdict("wrong", message, text, got.read_as, inst.display)


def _check_choices(inst: Instance, text: str) -> Verdict:
    picked = parse_choices(text, inst.choices, inst.kind == "multiple")
    read_as = ", ".join(letter(i) for i in picked)
    if sorted(picked) == sorted(inst.correct):
        return Verdict("correct", "Correct.", text, read_as, inst.display)
    message = f"Not quite: you chose {read_as}; the answer is {inst.display}."
    if inst.kind == "multiple":
        missed = [letter(i) for i in inst.correct if i not in picked]
        extra = [letter(i) for i in picked if i not in inst.correct]
        notes = []
        if missed:
            notes.append("missed " + ", ".join(missed))
        if extra:
            notes.append("should not have chosen " + ", ".join(extra))
        message += " (" + "; ".join(notes) + ")."
    return Verdict("wrong", message, text, read_as, inst.display)


def _check_text(inst: Instance, text: str) -> Verdict:
    if not normalize_text(text):
        raise Unreadable("the answer is empty")
    if text_matches(text, inst.accepted):
        return Verdict("correct", "Correct.", text, text, inst.display)
    return Verdict(
        "wrong", f"Not quite: you answered {text!r}; the answer is {inst.display}.", text, text,
        inst.display,
    )


# ---------------------------------------------------------------------------- for tests and checks


def example_answer(inst: Instance) -> str:
    """An answer that must be accepted (used by ``quiz check`` and the tests)."""
    if inst.kind == "numeric":
        assert inst.value is not None
        v = float(inst.value)
        return str(int(v)) if v.is_integer() else repr(v)
    if inst.kind in ("single", "multiple"):
        return ", ".join(letter(i) for i in inst.correct)
    return inst.accepted[0]


def wrong_answer(inst: Instance) -> str:
    """An answer that must be rejected as wrong (not unreadable)."""
    if inst.kind == "numeric":
        v = float(inst.value or 0.0)
        wrong = v + 10 * inst.tolerance.width(v) + (abs(v) if v else 1.0)
        return repr(wrong)
    if inst.kind == "single":
        other = next(i for i in range(len(inst.choices)) if i not in inst.correct)
        return letter(other)
    if inst.kind == "multiple":
        wrong_ones = [i for i in range(len(inst.choices)) if i not in inst.correct]
        picked = sorted(inst.correct[1:] + wrong_ones[:1]) if wrong_ones else inst.correct[1:]
        return ", ".join(letter(i) for i in picked) or letter(wrong_ones[0])
    return "certainly not the answer"
