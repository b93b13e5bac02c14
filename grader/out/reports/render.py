"""From a :class:`~grader.model.results.SubmissionResult` to what the templates show, and the files.

The templates never look at ``CheckResult.details`` themselves: :func:`build_view` turns the
results into a view (plain dicts) for one audience, and that is the only place where hidden
checks are redacted. Both reports (HTML with inline SVG, Markdown in words) render the same view.

How ``details`` become a report — the convention a check relies on
--------------------------------------------------------------------
Every key of ``details`` is shown in one of four ways; a new check gets its pictures by storing
data in one of these shapes, without touching the templates.

1. **Figures.** A value that is a figure spec (``{"kind": "curves" | "heatmap" | "heatmaps",
   ...}``, made with :mod:`grader.model.figures`: ``curves``, ``heatmap``, ``heatmaps``,
   ``comparison``), or a list of them, is drawn as inline SVG (HTML) and described in words
   (Markdown). Without a title, the figure is titled from its key (``TITLES`` or the key itself).
   Ad-hoc shapes are recognised too:

   * ``{"actual": M, "expected": M}`` with two matrices (lists of lists of numbers), under any key
     (``weights``, ``weights_masked``, ...) or as top-level ``actual`` and ``expected`` keys:
     yours, expected and the difference heatmap, side by side.
   * ``heatmap``: a matrix, with ``mask`` (1 = may attend) when present: the weights with blocked
     cells struck through and leaks outlined in red, next to the mask.
   * any other matrix: one heatmap.
   * ``{name: [y, ...], ...}`` (every value a list of numbers, at least 2 points), e.g.
     ``curves = {"student": [...], "reference": [...]}`` or ``lrs = {"student": [...],
     "expected": [...]}``: a line chart; series named ``reference`` or ``expected`` are dashed.

2. **Facts**, from the keys that :mod:`grader.checks.compare` and friends write, in words:
   ``max_abs_diff``, ``where``, ``actual_at``, ``expected_at`` (the largest absolute difference,
   its index and both values); ``max_rel_diff``; ``mismatched``, ``shape``, ``tolerance`` (how
   many values are outside ``atol``/``rtol``); ``nonfinite``; ``actual_shape`` and
   ``expected_shape``; scalar ``actual`` and ``expected``; ``loss`` and ``ln_vocab``;
   ``inputs`` (name -> shape); ``error`` (what the student's code raised, with its traceback);
   ``traceback`` (a grader bug: instructor only); and ``likely_mistake`` (``{"name", "hint",
   "course"}``, from the diagnosis), shown in its own box.
3. **Tables**: a dict of dicts of scalars, e.g. ``measured = {"wte": {"std": .., "mean": ..}}``.
4. **Values**: every other key is listed with its words (``words.LABELS``) and its value in
   words (``words.say``: units, shortened lists, bounds). Every key a check emits is declared
   in :data:`grader.model.details.VOCABULARY` and has words; tests hold the checks to it.

Audiences: ``"student"`` shows a hidden check's name, status and points only — its message,
hint, details and inputs never reach the view — and the student's printed log only when no
hidden check ran; ``"instructor"`` shows everything, with the grading environment.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grader.model import figures as F
from grader.model.results import AssignmentResult, CheckResult, Status, SubmissionResult, Visibility
from grader.model.rootcause import Cause, root_causes, start_here
from grader.out.reports import words

AUDIENCES = ("student", "instructor")

# Titles and axis labels for keys that checks already use.
TITLES: dict[str, tuple[str, str, str]] = {
    "weights": ("Attention weights without a mask (first batch element and head)", "key",
                "query"),
    "weights_masked": ("Attention weights with a mask (first batch element and head)", "key",
                       "query"),
    "heatmap": ("Your attention weights (first batch element and head)", "key", "query"),
    "mask": ("The mask (1 = may attend)", "key", "query"),
    "actual": ("Yours and expected", "column", "row"),
    "curves": ("Loss curve: yours and the reference's", "step", "loss"),
    "losses": ("Loss curve", "step", "loss"),
    "train_losses": ("Training loss", "step", "loss"),
    "val_losses": ("Validation loss", "step", "loss"),
    "lrs": ("Learning-rate schedule: yours and the expected one", "step", "learning rate"),
    "grad_norms": ("Gradient norm", "step", "norm"),
}

STATUS = {
    Status.PASSED: {"label": "PASS", "icon": "✓", "css": "passed", "emoji": "✅"},
    Status.FAILED: {"label": "FAIL", "icon": "✗", "css": "failed", "emoji": "❌"},
    Status.ERROR: {"label": "ERROR", "icon": "!", "css": "error", "emoji": "❌"},
    Status.TIMEOUT: {"label": "TIMEOUT", "icon": "◔", "css": "timeout", "emoji": "⏱️"},
    Status.SKIPPED: {"label": "SKIPPED", "icon": "–", "css": "skipped", "emoji": "➖"},
}

FACT_KEYS = {"likely_mistake", "max_abs_diff", "max_rel_diff", "where", "actual_at",
             "expected_at", "nonfinite", "shape", "tolerance", "mismatched", "inputs",
             "actual_shape", "expected_shape", "loss", "ln_vocab", "error", "traceback"}


def write_reports(result: SubmissionResult, directory: Path | str, *,
                  audience: str = "student") -> list[Path]:
    """Write ``report.html`` and ``report.md`` for ``result`` into ``directory`` (created if
    needed) and return their paths. ``audience`` is ``"student"`` (hidden checks show only name
    and points) or ``"instructor"`` (everything)."""
    from grader.out.reports.html import render_html
    from grader.out.reports.markdown import render_markdown

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    html_path, md_path = directory / "report.html", directory / "report.md"
    html_path.write_text(render_html(result, audience=audience), encoding="utf-8")
    md_path.write_text(render_markdown(result, audience=audience), encoding="utf-8")
    return [html_path, md_path]


def build_view(result: SubmissionResult, audience: str = "student") -> dict[str, Any]:
    """Everything the templates show, for one audience, as plain data."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}, not {audience!r}")
    instructor = audience == "instructor"
    causes = root_causes(result)
    assignments = [_assignment_view(a, instructor, causes) for a in result.assignments]
    checks = [c for a in result.assignments for c in a.checks]
    hidden_ran = any(c.visibility is Visibility.HIDDEN and c.status is not Status.SKIPPED
                     for c in checks)
    env = result.environment or {}
    notes = []
    isolation = str(env.get("isolation", ""))
    if isolation.startswith("none"):
        notes.append(f"The code ran without a sandbox on this machine: {isolation}.")
    if env.get("hidden_checks") == "listed, not run":
        notes.append("Hidden checks were not run: they run when your instructor grades the "
                     "submission.")
    notebooks = env.get("notebooks")
    if isinstance(notebooks, Mapping):
        notes.extend(f"Warning: {text}" for entry in notebooks.values()
                     if isinstance(entry, Mapping) for text in entry.get("failed_cells") or [])
    return {
        "audience": audience,
        "instructor": instructor,
        "submission": result.submission,
        "submission_id": result.submission_id,
        "grader_version": result.grader_version,
        "seconds": result.seconds,
        "score": result.score,
        "max_score": result.max_score,
        "score_text": points(result.score, result.max_score),
        "percent": _percent(result.score, result.max_score),
        "counts": _counts(checks),
        "assignments": assignments,
        "notes": notes,
        "start_here": _start_view(result, causes, instructor),
        "environment": _flatten(env) if instructor else [],
        "log": result.log if (instructor or not hidden_ran) else "",
    }


def points(score: float, max_score: float) -> str:
    return f"{score:g} / {max_score:g}"


def _percent(score: float, max_score: float) -> int:
    return round(100 * score / max_score) if max_score else 0


def _counts(checks: list[CheckResult]) -> dict[str, int]:
    counted = [c for c in checks if c.counts]
    return {"passed": sum(c.passed for c in counted), "total": len(counted)}


def _start_view(result: SubmissionResult, causes: dict[tuple[str, str], Cause],
                instructor: bool) -> dict[str, Any] | None:
    """The "Start here" box: the first module to fix, its first failing check, its likely
    mistake (from checks this audience may see only)."""
    start = start_here(result, causes,
                       lambda c: instructor or c.visibility is not Visibility.HIDDEN)
    if start is None:
        return None
    return {"file": start.file, "assignment": start.assignment,
            "anchor": _anchor(f"{start.assignment}-{start.check_id}"),
            "check": start.check_name, "whole_module": start.whole_module,
            "mistake": start.mistake, "hint": start.hint, "course": start.course,
            "problem": start.problem, "follows": start.follows}


def _assignment_view(a: AssignmentResult, instructor: bool,
                     causes: dict[tuple[str, str], Cause] | None = None) -> dict[str, Any]:
    title, course = a.title, a.course
    return {
        "name": a.name, "anchor": _anchor(a.name), "title": title, "course": course,
        "score": a.score, "max_score": a.max_score, "score_text": points(a.score, a.max_score),
        "percent": _percent(a.score, a.max_score), "counts": _counts(a.checks),
        "message": a.message, "source": a.source,
        "checks": [_check_view(a, c, instructor, (causes or {}).get((a.name, c.id)))
                   for c in a.checks],
        "follows": _follows((causes or {}).get((a.name, a.checks[0].id))
                            if a.message and a.checks else None),
    }


def _follows(cause: Cause | None) -> dict[str, str] | None:
    if cause is None:
        return None
    return {"file": cause.file, "anchor": _anchor(cause.assignment), "because": cause.because,
            "text": cause.sentence()}


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower())


def _check_view(a: AssignmentResult, c: CheckResult, instructor: bool,
                cause: Cause | None = None) -> dict[str, Any]:
    hidden = c.visibility is Visibility.HIDDEN
    redacted = hidden and not instructor
    view: dict[str, Any] = {
        "id": c.id, "name": c.name, "anchor": _anchor(f"{a.name}-{c.id}"),
        "status": c.status.value, **STATUS[c.status], "hidden": hidden, "redacted": redacted,
        "score": c.score, "max_score": c.max_score, "score_text": points(c.score, c.max_score),
        "counts": c.counts, "seconds": c.seconds,
        "message": "", "hint": "", "likely_mistake": None, "facts": [], "inputs": [],
        "figures": [], "tables": [], "traces": [], "other": [], "has_body": False,
        "follows": None,
    }
    if redacted:
        if c.status is Status.SKIPPED:
            view["label"] = "NOT RUN"
        return view
    # An assignment-wide problem is already said once above its checks.
    same = a.message and c.status is Status.ERROR and c.message == a.message
    view["message"] = "" if same else c.message
    view["hint"] = c.hint
    view.update(interpret(c.details or {}, instructor))
    if cause is not None and not same:
        # The root cause replaces the local hint and diagnosis: they would send the student
        # into this module when the fix is in an earlier one.
        view["follows"] = _follows(cause)
        view["hint"], view["likely_mistake"] = "", None
    view["has_body"] = bool(view["message"] or view["hint"] or view["likely_mistake"]
                            or view["follows"]
                            or view["facts"] or view["inputs"] or view["figures"]
                            or view["tables"] or view["traces"] or view["other"])
    return view


def interpret(details: Mapping[str, Any], instructor: bool = True) -> dict[str, Any]:
    """Sort a check's details into the likely mistake, facts, inputs, figures, tables, traces
    and the rest (see the convention at the top of this module)."""
    d = dict(details)
    out: dict[str, Any] = {"likely_mistake": _mistake(d.get("likely_mistake")),
                           "facts": _facts(d), "inputs": _inputs(d.get("inputs")),
                           "figures": [], "tables": [], "traces": [], "other": []}
    error = d.get("error")
    if isinstance(error, Mapping) and error.get("traceback"):
        out["traces"].append({"title": "Where your code raised", "text": str(error["traceback"])})
    if instructor and d.get("traceback"):
        out["traces"].append({"title": "Grader traceback (instructor only)",
                              "text": str(d["traceback"])})
    used = set(FACT_KEYS)
    if ((_scalar(d.get("actual")) and _scalar(d.get("expected")))
            or (_listed(d.get("actual")) and _listed(d.get("expected")))):
        used |= {"actual", "expected"}  # said as a fact: "yours X, expected Y"
    # Pairs of top-level matrices, and weights shown with their mask.
    if _is_matrix(d.get("actual")) and _is_matrix(d.get("expected")):
        out["figures"].append(_titled(F.comparison(d["actual"], d["expected"]), "actual"))
        used |= {"actual", "expected"}
    if _is_matrix(d.get("heatmap")):
        title, xl, yl = TITLES["heatmap"]
        if _is_matrix(d.get("mask")):
            mask = [[bool(F.to_float(v)) for v in row] for row in d["mask"]]
            fig = F.heatmaps(F.heatmap(d["heatmap"], title="your weights", x_label=xl,
                                       y_label=yl, mask=mask, vmin=0.0),
                             F.heatmap(d["mask"], title="mask (1 = may attend)", x_label=xl,
                                       y_label=yl), title=title, shared_scale=False)
            used.add("mask")
        else:
            fig = F.heatmap(d["heatmap"], title=title, x_label=xl, y_label=yl, vmin=0.0)
        out["figures"].append(fig)
        used.add("heatmap")
    for key, value in d.items():
        if key in used:
            continue
        fig = _figure(key, value)
        if fig is not None:
            out["figures"].extend(fig)
        elif _is_table(value):
            out["tables"].append(_table(key, value))
        else:
            out["other"].append({"key": key, "label": words.label(key),
                                 "text": _cut(words.say(key, value))})
    return out


def _figure(key: str, value: Any) -> list[dict[str, Any]] | None:
    title, xl, yl = TITLES.get(key, (words.label(key), "", ""))
    if F.is_figure(value):
        return [_titled(dict(value), key)]
    if isinstance(value, list) and value and all(F.is_figure(v) for v in value):
        return [_titled(dict(v), key) for v in value]
    if _is_matrix(value):
        return [F.heatmap(value, title=title, x_label=xl or "column", y_label=yl or "row")]
    if isinstance(value, Mapping):
        if _is_matrix(value.get("actual")) and _is_matrix(value.get("expected")):
            return [F.comparison(value["actual"], value["expected"], title=title,
                                 x_label=xl or "column", y_label=yl or "row")]
        if value and all(_is_series(v) for v in value.values()) and any(
                len(v) >= 2 for v in value.values()):
            return [F.curves(value, title=title, x_label=xl or "step", y_label=yl)]
    return None


def _titled(fig: dict[str, Any], key: str) -> dict[str, Any]:
    if not fig.get("title"):
        fig["title"] = TITLES.get(key, (words.label(key),))[0]
    return fig


def _humanise(key: str) -> str:
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _is_number(v: Any) -> bool:
    return F.to_float(v) is not None


def _is_series(v: Any) -> bool:
    return isinstance(v, list) and all(x is None or _is_number(x) for x in v)


def _is_matrix(v: Any) -> bool:
    return (isinstance(v, list) and len(v) > 0 and all(isinstance(r, list) and r for r in v)
            and all(_is_number(x) for r in v for x in r))


def _is_table(v: Any) -> bool:
    return (isinstance(v, Mapping) and len(v) > 0
            and all(isinstance(r, Mapping) and r for r in v.values())
            and all(not isinstance(x, (Mapping, list)) for r in v.values() for x in r.values()))


def _table(key: str, value: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    columns: list[str] = []
    for row in value.values():
        columns.extend(k for k in row if k not in columns)
    rows = [[str(name)] + [words.num(row[c]) if c in row else "" for c in columns]
            for name, row in value.items()]
    return {"title": words.label(key), "columns": [""] + [_humanise(c) for c in columns],
            "rows": rows}


def _cut(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(value: Any, limit: int = 300) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, float):
        text = words.num(value)
    else:
        try:
            text = json.dumps(value, default=str, allow_nan=True)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mistake(value: Any) -> dict[str, str] | None:
    if not value:
        return None
    if isinstance(value, str):
        return {"name": value, "hint": "", "course": ""}
    if isinstance(value, Mapping) and value.get("name"):
        return {"name": str(value["name"]), "hint": str(value.get("hint") or ""),
                "course": str(value.get("course") or "")}
    return None


def _inputs(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, Mapping):
        return []
    return [{"name": str(k), "shape": words.shape(v)} for k, v in value.items()]


def _index(value: Any) -> str:
    return "[" + ", ".join(str(v) for v in value) + "]" if isinstance(value, list) else str(value)


def _facts(d: Mapping[str, Any]) -> list[dict[str, str]]:
    facts: list[dict[str, str]] = []

    def add(label: str, text: str) -> None:
        facts.append({"label": label, "text": text})

    num = words.num
    if "max_abs_diff" in d:
        text = num(d["max_abs_diff"])
        if d.get("where") is not None:
            text += f" at index {_index(d['where'])}"
        if "actual_at" in d and "expected_at" in d:
            text += f" (yours {num(d['actual_at'], 6)}, expected {num(d['expected_at'], 6)})"
        add("Largest absolute difference", text)
    if "max_rel_diff" in d:
        add("Largest relative difference", num(d["max_rel_diff"]))
    tol = d.get("tolerance")
    tol_text = (", ".join(f"{k}={num(v)}" for k, v in tol.items())
                if isinstance(tol, Mapping) else (str(tol) if tol is not None else ""))
    if "mismatched" in d:
        total = math.prod(d["shape"]) if isinstance(d.get("shape"), list) else None
        text = f"{num(d['mismatched'])}" + (f" of {total:,}" if total is not None else "")
        add("Values outside the tolerance", text + (f" ({tol_text})" if tol_text else ""))
    elif tol_text:
        add("Tolerance", tol_text)
    nonfinite = F.to_float(d.get("nonfinite"))
    if nonfinite:
        text = num(d["nonfinite"])
        if "max_abs_diff" not in d and d.get("where") is not None:
            text += f", the first at index {_index(d['where'])}"
        add("NaN/inf values", text)
    if "shape" in d:
        add("Shape compared", words.shape(d["shape"]))
    if "actual_shape" in d or "expected_shape" in d:
        add("Shape", f"yours {words.shape(d.get('actual_shape', '?'))}, expected "
                     f"{words.shape(d.get('expected_shape', '?'))}")
    if _scalar(d.get("actual")) and _scalar(d.get("expected")):
        add("Value", f"yours {num(d['actual'])}, expected {num(d['expected'])}")
    elif _listed(d.get("actual")) and _listed(d.get("expected")):
        add("Values", f"yours {words.say('actual', d['actual'])}, expected "
                      f"{words.say('expected', d['expected'])}")
    if "loss" in d:
        text = num(d["loss"])
        ln_v, loss = F.to_float(d.get("ln_vocab")), F.to_float(d["loss"])
        if ln_v is not None:
            text += f" (ln V = {num(ln_v)}"
            text += f", {num(loss - ln_v, 3)} away)" if loss is not None else ")"
        add("Loss", text)
    error = d.get("error")
    if isinstance(error, Mapping) and (error.get("type") or error.get("message")):
        text = ": ".join(str(error[k]) for k in ("type", "message") if error.get(k))
        if error.get("where"):
            text += f" ({error['where']})"
        add("Raised", text)
    return facts


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool))


def _listed(v: Any) -> bool:
    """A flat list of scalars (token ids, positions): said in words, not drawn."""
    return isinstance(v, list) and all(_scalar(x) for x in v) and not _is_matrix(v)


def _flatten(env: Mapping[str, Any], prefix: str = "") -> list[dict[str, str]]:
    rows = []
    for k, v in env.items():
        if isinstance(v, Mapping):
            rows.extend(_flatten(v, f"{prefix}{k}."))
        else:
            rows.append({"key": f"{prefix}{k}", "value": _compact(v)})
    return rows
