"""The schema of a quiz bank, checked on load; messages name the file, line, question and field.

A bank is a YAML mapping::

    title: Phase II checkpoint            # required
    description: ...                      # optional
    questions:                            # required, a non-empty list
      - id: kv-cache-bytes                # required, unique: lower-case letters, digits, '-_.'
        kind: numeric                     # numeric | single | multiple | text | param
        title: KV cache memory            # optional short name for reports
        prompt: ...                       # required (for param: a template with {variables})
        explanation: ...                  # required, shown after answering (param: a template)
        tags: [kv-cache, memory]          # required: concept tags, lower-case-kebab
        source: day30-capstone-and-checkpoint.md, Part 3 Q4   # required: the course file, section
        points: 1                         # optional, > 0
        hint: ...                         # optional: shown after a first miss (second try)
        solution: [step, step, ...]       # optional: worked solution (generators make their own)
        covers: [item-id, ...]            # optional: course items (quizzes/course-items.yaml)
        passage: ...                      # optional: the course text's own words it is written from
        # numeric
        answer: 2*12*1024*768*4           # a number or anything the answer parser reads
        tolerance: {abs: 0, rel: 0.001}   # optional (default rel 0.01)
        unit: bytes                       # optional: bytes | bits | nats | count | percent
        mistakes: [{value: ..., message: ...}]   # optional: known wrong values, with feedback;
                                          # course_text: true: a value the course states wrongly
        # single / multiple
        choices: [text, text, ...]        # at least 2, distinct
        correct: text | [text, ...]       # single: one choice's text; multiple: a list of them
        shuffle: true                     # optional (default true)
        feedback: {choice text: message}  # optional: why a distractor is wrong, shown when chosen
        # text
        accepted: [text, ...]             # matched ignoring case, punctuation, spaces, articles
        # param
        generator: kv_cache_bytes         # a name from grader.quiz.generators.GENERATORS
        options: {...}                    # optional, the generator's options
        tolerance: {...}                  # optional override of the generator's tolerance
        # recall (a self-graded reveal card: no automatic verdict, practice only)
        prompt / explanation              # the question, and the model answer revealed
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from .answers import UNIT_FAMILIES, Unreadable, normalize_text, read_number
from .generators import GENERATORS
from .model import KINDS, Bank, Mistake, Question, Tolerance, mistake_clashes

COURSE_FILES = (
    "day30-capstone-and-checkpoint.md",
    "stage12-training-dynamics.md",
    "series4-llms-and-transformers-summary.md",
    "transformer-validation-summary.md",
    "learning-plan.md",
)
TOP_KEYS = {"title", "description", "questions"}
COMMON_KEYS = {"id", "kind", "title", "prompt", "explanation", "tags", "source", "points",
               "hint", "solution", "covers", "passage"}
KIND_KEYS = {
    "numeric": {"answer", "tolerance", "unit", "mistakes"},
    "single": {"choices", "correct", "shuffle", "feedback"},
    "multiple": {"choices", "correct", "shuffle", "feedback"},
    "text": {"accepted"},
    "param": {"generator", "options", "tolerance", "shuffle"},
    "recall": set(),
}
ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SOURCE_RE = re.compile(r"^(?P<file>[\w.-]+\.md)(?:\s*[,:;(—–-]\s*(?P<section>.+))?$")


class BankError(Exception):
    """A bank failed validation; ``messages`` has one line per problem."""

    def __init__(self, messages: list[str]):
        super().__init__("\n".join(messages))
        self.messages = messages


class _Ctx:
    def __init__(self, path: Path, lines: dict[int, int]):
        self.path = path
        self.lines = lines
        self.errors: list[str] = []

    def where(self, node: Any = None) -> str:
        line = self.lines.get(id(node)) if node is not None else None
        return f"{self.path}:{line}" if line else f"{self.path}"

    def top(self, field: str, problem: str, node: Any = None) -> None:
        self.errors.append(f"{self.where(node)}: field '{field}': {problem}")

    def q(self, raw: Any, index: int, field: str | None, problem: str) -> None:
        qid = raw.get("id") if isinstance(raw, dict) else None
        who = f"question '{qid}'" if isinstance(qid, str) and qid else f"question #{index + 1}"
        what = f" field '{field}':" if field else ""
        self.errors.append(f"{self.where(raw)}: {who}:{what} {problem}")


def validate_bank(data: Any, path: Path, lines: dict[int, int] | None = None) -> Bank:
    """Validate a bank's parsed YAML; return the :class:`Bank` or raise :class:`BankError`."""
    ctx = _Ctx(path, lines or {})
    if not isinstance(data, dict):
        raise BankError([f"{path}: a bank must be a mapping with 'title' and 'questions'"])
    for key in sorted(set(data) - TOP_KEYS, key=str):
        ctx.top(str(key), f"unknown field (allowed: {', '.join(sorted(TOP_KEYS))})", data)
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        ctx.top("title", "required, a non-empty string", data)
        title = path.stem
    description = data.get("description", "")
    if not isinstance(description, str):
        ctx.top("description", "must be a string", data)
        description = ""
    raw_questions = data.get("questions")
    questions: list[Question] = []
    if not isinstance(raw_questions, list) or not raw_questions:
        ctx.top("questions", "required, a non-empty list of questions", data)
        raw_questions = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_questions):
        q = _question(ctx, raw, index, path.stem)
        if q is None:
            continue
        if q.id in seen:
            ctx.q(raw, index, "id", f"duplicate id (also question #{seen[q.id] + 1})")
            continue
        seen[q.id] = index
        questions.append(q)
    if ctx.errors:
        raise BankError(ctx.errors)
    return Bank(name=path.stem, title=title.strip(), path=path, questions=questions,
                description=description.strip())


def _str(ctx: _Ctx, raw: dict, index: int, field: str, required: bool = True) -> str:
    value = raw.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        ctx.q(raw, index, field, "required, a non-empty string" if value is None
              else f"must be a non-empty string, not {type(value).__name__}")
        return ""
    return value


def _number(ctx: _Ctx, raw: dict, index: int, field: str, value: Any, unit: str | None = None,
            ) -> float | None:
    if isinstance(value, bool):
        ctx.q(raw, index, field, "must be a number, not true/false")
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return read_number(value, unit).value
        except Unreadable as exc:
            ctx.q(raw, index, field, f"cannot read {value!r} as a number: {exc}")
            return None
    ctx.q(raw, index, field, f"must be a number, not {type(value).__name__}")
    return None


def _question(ctx: _Ctx, raw: Any, index: int, bank: str) -> Question | None:
    if not isinstance(raw, dict):
        ctx.errors.append(f"{ctx.where()}: question #{index + 1}: must be a mapping, "
                          f"not {type(raw).__name__}")
        return None
    n_errors = len(ctx.errors)
    qid = raw.get("id")
    if not isinstance(qid, str) or not ID_RE.match(qid):
        ctx.q(raw, index, "id", "required: lower-case letters, digits, '-', '_' or '.'"
              if qid is None else f"{qid!r} is not a valid id (lower-case letters, digits, '-_.')")
        qid = ""
    kind = raw.get("kind")
    if kind not in KINDS:
        ctx.q(raw, index, "kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
        return None
    allowed = COMMON_KEYS | KIND_KEYS[kind]
    for key in sorted(set(raw) - allowed, key=str):
        ctx.q(raw, index, str(key), f"unknown field for a {kind} question "
              f"(allowed: {', '.join(sorted(allowed))})")
    prompt = _str(ctx, raw, index, "prompt")
    explanation = _str(ctx, raw, index, "explanation")
    title = _str(ctx, raw, index, "title", required=False)
    tags = raw.get("tags")
    if not isinstance(tags, list) or not tags:
        ctx.q(raw, index, "tags", "required, a non-empty list of concept tags")
        tags = []
    for tag in tags:
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            ctx.q(raw, index, "tags", f"{tag!r} is not a tag (lower-case words joined by '-')")
    source = _str(ctx, raw, index, "source")
    if source:
        m = SOURCE_RE.match(source.strip())
        if not m or m.group("file") not in COURSE_FILES:
            ctx.q(raw, index, "source", f"{source!r} must name a course file ("
                  f"{', '.join(COURSE_FILES)}), then the section, e.g. "
                  "'day30-capstone-and-checkpoint.md, Part 3 Q4'")
    points = raw.get("points", 1)
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
        ctx.q(raw, index, "points", f"must be a number > 0, not {points!r}")
        points = 1
    q = Question(id=qid, kind=kind, prompt=prompt, explanation=explanation,
                 tags=[t for t in tags if isinstance(t, str)], source=source.strip(), bank=bank,
                 points=float(points), title=title.strip(), line=ctx.lines.get(id(raw), 0))
    q.hint = _str(ctx, raw, index, "hint", required=False).strip()
    q.passage = " ".join(_str(ctx, raw, index, "passage", required=False).split())
    q.solution = _str_list(ctx, raw, index, "solution")
    q.covers = _str_list(ctx, raw, index, "covers")
    for c in q.covers:
        if not ID_RE.match(c):
            ctx.q(raw, index, "covers", f"{c!r} is not a course item id")
    if kind == "numeric":
        _numeric(ctx, raw, index, q)
    elif kind in ("single", "multiple"):
        _choices(ctx, raw, index, q)
    elif kind == "text":
        _text(ctx, raw, index, q)
    elif kind == "param":
        _param(ctx, raw, index, q)
    return q if len(ctx.errors) == n_errors else None


def _str_list(ctx: _Ctx, raw: dict, index: int, field: str) -> list[str]:
    value = raw.get(field)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        ctx.q(raw, index, field, "must be a list of non-empty strings")
        return []
    return [v.strip() for v in value]


def _tolerance(ctx: _Ctx, raw: dict, index: int) -> Tolerance | None:
    if "tolerance" not in raw:
        return None
    tol = raw["tolerance"]
    if not isinstance(tol, dict) or not tol or set(tol) - {"abs", "rel", "sig"}:
        ctx.q(raw, index, "tolerance", "must be a mapping with 'abs', 'rel' and/or 'sig', e.g. "
              "{abs: 0.01}, {rel: 0.001} or {sig: 3} (3 significant figures)")
        return None
    sig = tol.get("sig", 0)
    if isinstance(sig, bool) or not isinstance(sig, int) or not 0 <= sig <= 15:
        ctx.q(raw, index, "tolerance.sig", f"must be a whole number of significant figures "
              f"(1-15), not {sig!r}")
        return None
    values = {}
    for key in ("abs", "rel"):
        v = tol.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            ctx.q(raw, index, f"tolerance.{key}", f"must be a number >= 0, not {v!r}")
            return None
        values[key] = float(v)
    if values["rel"] >= 1:
        ctx.q(raw, index, "tolerance.rel", "is a fraction: must be < 1 (0.01 means 1%)")
        return None
    if "rel" not in tol and sig:
        values["rel"] = 0.0
    return Tolerance(abs=values["abs"], rel=values["rel"], sig=sig)


def _numeric(ctx: _Ctx, raw: dict, index: int, q: Question) -> None:
    unit = raw.get("unit")
    if unit is not None and unit not in UNIT_FAMILIES:
        ctx.q(raw, index, "unit", f"must be one of {', '.join(UNIT_FAMILIES)}, not {unit!r}")
        unit = None
    q.unit = unit
    if "answer" not in raw:
        ctx.q(raw, index, "answer", "required for a numeric question")
    else:
        q.answer = _number(ctx, raw, index, "answer", raw["answer"], unit)
        q.answer_text = str(raw["answer"])
    tol = _tolerance(ctx, raw, index)
    if tol is not None:
        q.tolerance = tol
    mistakes = raw.get("mistakes", [])
    if not isinstance(mistakes, list):
        ctx.q(raw, index, "mistakes", "must be a list of {value, message}")
        mistakes = []
    for i, m in enumerate(mistakes):
        if (not isinstance(m, dict) or not {"value", "message"} <= set(m)
                or set(m) - {"value", "message", "course_text"}):
            ctx.q(raw, index, f"mistakes[{i}]", "must be a mapping with 'value' and 'message' "
                  "(and optionally course_text: true)")
            continue
        course_text = m.get("course_text", False)
        if not isinstance(course_text, bool):
            ctx.q(raw, index, f"mistakes[{i}].course_text", "must be true or false")
            continue
        value = _number(ctx, raw, index, f"mistakes[{i}].value", m["value"], unit)
        if not isinstance(m["message"], str) or not m["message"].strip():
            ctx.q(raw, index, f"mistakes[{i}].message", "must be a non-empty string")
            continue
        if value is not None:
            if q.answer is not None and mistake_clashes(q.tolerance, q.answer, value):
                ctx.q(raw, index, f"mistakes[{i}].value", "is accepted as correct by the tolerance"
                      " (or too close to the answer to be told apart)")
            q.mistakes.append(Mistake(value, m["message"].strip(), course_text))


def _choices(ctx: _Ctx, raw: dict, index: int, q: Question) -> None:
    choices = raw.get("choices")
    if not isinstance(choices, list) or len(choices) < 2:
        ctx.q(raw, index, "choices", "required, a list of at least 2 choices")
        return
    if len(choices) > 26:
        ctx.q(raw, index, "choices", "at most 26 choices (a–z)")
    texts = []
    for i, c in enumerate(choices):
        if isinstance(c, (int, float)) and not isinstance(c, bool):
            c = str(c)
        if isinstance(c, dict):
            ctx.q(raw, index, f"choices[{i}]", "is a mapping, not text: quote a choice that "
                  "contains ': '")
            continue
        if not isinstance(c, str) or not normalize_text(c):
            ctx.q(raw, index, f"choices[{i}]", "must be a non-empty string (a lone article such "
                  "as 'A' is ignored when matching: write 'Option A')")
            continue
        texts.append(c.strip())
    norms = [normalize_text(t) for t in texts]
    for t, n in zip(texts, norms, strict=True):
        if norms.count(n) > 1:
            ctx.q(raw, index, "choices", f"{t!r} appears twice (ignoring case and punctuation)")
            break
    q.choices = texts
    correct = raw.get("correct")
    if q.kind == "single":
        if isinstance(correct, list):
            ctx.q(raw, index, "correct", "a single-choice question has one correct choice: give "
                  "its text, not a list (or use kind: multiple)")
            return
        correct = [correct]
    elif not isinstance(correct, list) or not correct:
        ctx.q(raw, index, "correct", "required, a non-empty list of the correct choices' texts")
        return
    for c in correct:
        c = str(c).strip() if isinstance(c, (str, int, float)) and not isinstance(c, bool) else c
        if c not in texts:
            ctx.q(raw, index, "correct", f"{c!r} is not one of the choices")
        elif c not in q.correct:
            q.correct.append(c)
    if q.kind == "multiple" and len(q.correct) == len(texts):
        ctx.q(raw, index, "correct", "every choice is correct: make at least one wrong")
    feedback = raw.get("feedback", {})
    if not isinstance(feedback, dict):
        ctx.q(raw, index, "feedback", "must be a mapping from a wrong choice's text to a message")
        feedback = {}
    for choice, message in feedback.items():
        choice = str(choice).strip()
        if choice not in texts:
            ctx.q(raw, index, "feedback", f"{choice!r} is not one of the choices")
        elif choice in q.correct:
            ctx.q(raw, index, "feedback", f"{choice!r} is a correct choice: feedback is for "
                  "distractors")
        elif not isinstance(message, str) or not message.strip():
            ctx.q(raw, index, "feedback", f"the feedback for {choice!r} must be a non-empty "
                  "string")
        else:
            q.feedback[choice] = " ".join(message.split())
    shuffle = raw.get("shuffle", True)
    if not isinstance(shuffle, bool):
        ctx.q(raw, index, "shuffle", "must be true or false")
    q.shuffle = bool(shuffle)


def _text(ctx: _Ctx, raw: dict, index: int, q: Question) -> None:
    accepted = raw.get("accepted")
    if isinstance(accepted, str):
        accepted = [accepted]
    if not isinstance(accepted, list) or not accepted:
        ctx.q(raw, index, "accepted", "required, a non-empty list of accepted answers")
        return
    for i, a in enumerate(accepted):
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            a = str(a)
        if not isinstance(a, str) or not normalize_text(a):
            ctx.q(raw, index, f"accepted[{i}]", "must be a non-empty string (after removing "
                  "punctuation and articles)")
            continue
        q.accepted.append(a.strip())


def template_fields(template: str) -> list[str]:
    """The field names of a format template; ``ValueError`` for anything but plain names."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"'{{{name}}}' is not a plain variable name (write {{{{ and }}}} for "
                             "literal braces)")
        if conversion:
            raise ValueError(f"'{{{name}!{conversion}}}': conversions are not allowed")
        if spec and "{" in spec:
            raise ValueError(f"'{{{name}:{spec}}}': nested fields are not allowed")
        names.append(name)
    return names


def _param(ctx: _Ctx, raw: dict, index: int, q: Question) -> None:
    name = raw.get("generator")
    gen = GENERATORS.get(name) if isinstance(name, str) else None
    if gen is None:
        ctx.q(raw, index, "generator", f"{name!r} is not a generator (known: "
              f"{', '.join(sorted(GENERATORS))})")
        return
    q.generator = name
    options = raw.get("options", {})
    if not isinstance(options, dict):
        ctx.q(raw, index, "options", "must be a mapping")
        options = {}
    for key, value in options.items():
        if key not in gen.options:
            known = ", ".join(gen.options) or "none"
            ctx.q(raw, index, f"options.{key}", f"not an option of {name} (options: {known})")
        elif type(value) is not type(gen.options[key]):
            ctx.q(raw, index, f"options.{key}",
                  f"must be a {type(gen.options[key]).__name__}, not {value!r}")
    q.options = dict(options)
    allowed = set(gen.variables) | {"answer"}
    for field in ("prompt", "explanation"):
        template = raw.get(field)
        if not isinstance(template, str):
            continue
        try:
            names = template_fields(template)
        except ValueError as exc:
            ctx.q(raw, index, field, str(exc))
            continue
        unknown = sorted(set(names) - allowed)
        if unknown:
            shown = ", ".join("{" + u + "}" for u in unknown)
            provided = ", ".join("{" + v + "}" for v in sorted(allowed))
            ctx.q(raw, index, field, f"unknown variable(s) {shown}; {name} provides {provided}")
    q.tolerance_override = _tolerance(ctx, raw, index)
    shuffle = raw.get("shuffle", True)
    if not isinstance(shuffle, bool):
        ctx.q(raw, index, "shuffle", "must be true or false")
    q.shuffle = bool(shuffle)
