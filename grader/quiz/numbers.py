"""Reading a typed number. Nothing a learner types is ever evaluated as code.

Numbers go through a small recursive-descent parser over a fixed grammar::

    answer  := approx? expr unit*
    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('+' | '-' | '√') unary | power
    power   := postfix (('^' | '**') unary)?       # right-associative; -2^2 = -4
    postfix := atom '%'?                           # 12.5% = 0.125
    atom    := NUMBER | 'pi' | 'e' | FUNC '(' expr ')' | FUNC postfix | '(' expr ')'
    FUNC    := ln | log (natural) | log2 | log10 | sqrt | exp

Accepted forms: ``2.99``, ``3``, ``3e0``, ``.5``, ``-0.5``, ``1/8``, ``12.5%``, ``ln(20)`` and
``ln 20``, ``log2(8)``, ``sqrt(64)``, ``√64``, ``exp(1)``, ``2^10``, ``2**10``, ``2.5x10^-4`` and
``2.5×10⁻⁴`` (a letter x between numbers, superscript exponents), ``≈ 3``, ``~7.46``,
``about 78%`` (a leading "about" is dropped), ``20x`` / ``20×`` ("times"), and ``1,024`` /
``124,439,808``: a comma between digits groups thousands when the groups have exactly three
digits; otherwise, in a lone number such as ``7,46``, it is a decimal comma. ``·``, ``÷`` and the
minus sign ``−`` are read as ``*``, ``/`` and ``-``. ``^`` is a power, never XOR. ``log`` is the
natural log, as in Python and numpy.

Words after the number are returned for :mod:`.units` to interpret. Anything else is
:class:`Unreadable`: the learner is told their answer could not be read, which is not a wrong
answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_LENGTH = 200
MAX_DEPTH = 40
FORMS_HELP = "2.99, 1/8, 12.5%, ln(20), log2(8), sqrt(64), 2^10, 2.5e-4, 2.5x10^-4 or 1,024"


class Unreadable(ValueError):
    """The answer could not be read; the message says why, in the learner's terms."""


# ---------------------------------------------------------------------------- numbers

# "7,46": digits, one comma, digits that are not a thousands group (so "1,024" stays 1024).
_DECIMAL_COMMA = re.compile(r"\d+,(?!\d{3}(?!\d))\d+(?:[eE][+-]?\d+)?(?![\d,.])")
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


def _tokenize(text: str, decimal_comma: bool = False) -> list[_Tok]:
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
                dec = _DECIMAL_COMMA.match(text, i)
                if dec is None or not decimal_comma:
                    raise Unreadable(
                        f"'{text[i:end + 2]}…': write one number, with '.' for decimals (a comma "
                        "groups thousands, as in 1,024, or is a decimal comma in a lone number "
                        "such as 7,46)"
                    )
                tok = dec.group(0).replace(",", ".")
                end = dec.end()
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
                    nxt = self.peek()
                    if nxt is None or nxt.kind == "op" and nxt.text not in ("√", "-"):
                        raise Unreadable(f"write {name}(...) with parentheses")
                    return _apply(name, self.postfix())  # "ln 20" is ln(20)
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
    """A typed number: its value, trailing words, and how precisely it was written."""

    value: float
    words: list[str]  # trailing unit words, lower-cased
    percent: bool  # a '%' was used (and already divided by 100)
    raw_words: list[str] | None = None  # the trailing words as typed (case kept)
    sig: int | None = None  # significant figures, when the answer is one plain number
    decimals: int | None = None  # decimal places, when the answer is one plain number


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPER_RUN = re.compile(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")
_APPROX = re.compile(r"^(?:≈|~|∼|≃|=|about\b|approximately\b|approx\b\.?|roughly\b|around\b|"
                     r"circa\b|ca\.)\s*", re.I)
# "2.5x10^-4", "3 x 10^8": a letter x before a power of ten (so "0x10" is not read as 0 × 10).
_LETTER_TIMES = re.compile(r"(?<=[\d.)])\s*[xX]\s*(?=10\s*(?:\^|\*\*))")
_TRAILING_TIMES = re.compile(r"(?<=[\d.)%])\s*(?:[x×X])$")


def _prepare(text: str) -> str:
    text = _SUPER_RUN.sub(lambda m: "^(" + m.group(0).translate(_SUPERSCRIPTS) + ")", text)
    text = _APPROX.sub("", text.strip())
    text = _TRAILING_TIMES.sub("", text)  # "20x" / "20×": twenty times
    text = _LETTER_TIMES.sub("*", text)  # "2.5x10^-4"
    for a, b in _REPLACE.items():
        text = text.replace(a, b)
    return text.strip()


def literal_precision(token: str) -> tuple[int, int | None]:
    """(significant figures, decimal places) of a number as written: ``"38.4"`` → (3, 1),
    ``"0.0620"`` → (3, 4), ``"124,000,000"`` → (3, 0), ``"2.5e-4"`` → (2, None)."""
    t = token.replace(",", "").lower()
    mantissa, _, exponent = t.partition("e")
    whole, dot, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    if not dot:
        digits = digits.rstrip("0")  # trailing zeros of a whole number are not significant
    sig = max(1, len(digits))
    decimals = None if exponent else len(frac)
    return sig, decimals


def parse_number(text: str, decimal_comma: bool = True) -> ParsedNumber:
    """Parse a typed number with optional trailing unit words; :class:`Unreadable` otherwise."""
    if not isinstance(text, str):
        text = str(text)
    text = text.strip()
    if not text:
        raise Unreadable("the answer is empty")
    if len(text) > MAX_LENGTH:
        raise Unreadable(f"the answer is longer than {MAX_LENGTH} characters")
    text = _prepare(text)
    if not text:
        raise Unreadable("the answer is empty")
    toks = _tokenize(text, decimal_comma)
    parser = _Parser(toks)
    value = parser.expr()
    words, raw = [], []
    for t in toks[parser.i :]:
        if t.kind == "id":
            words.append(t.text.lower())
            raw.append(t.text)
        elif t.kind == "op" and t.text == "%" and not words:
            parser.percent = True
            value /= 100
        elif t.kind == "num":
            raise Unreadable("two numbers in a row (write 1024 or 1,024, not 1 024)")
        else:
            raise Unreadable(f"unexpected '{t.text}'")
    head = [t for t in toks[: parser.i] if not (t.kind == "op" and t.text in "+-%")]
    sig = decimals = None
    if len(head) == 1 and head[0].kind == "num":
        sig, decimals = literal_precision(head[0].text)
    elif (len(head) >= 5 and head[0].kind == "num" and head[1].text == "*"
          and head[2].text == "10" and head[3].text in ("^", "**")):
        sig = literal_precision(head[0].text)[0]  # "2.5x10^-4": the mantissa's figures
    return ParsedNumber(value, words, parser.percent, raw, sig, decimals)


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
