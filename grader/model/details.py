"""The contract between checks and reports: which keys a check may put into
``CheckResult.details``, how the reports show each, and small builders for the structured ones.

A check describes what it saw as data; the reports (``grader.out``) turn that data into words
and pictures. For that to work, both sides must agree on the keys. :data:`VOCABULARY` is that
agreement: every key a check emits is declared here with the way it is shown
(:class:`Shown`) and what its value holds, and ``grader/out/reports/words.py`` gives every
declared key its words. Two tests hold both sides to it (``tests/out/test_report_words.py``):
one reads the checks' source for the keys they write, one grades the bundled examples and
looks at the keys they produce; a key missing here or without words fails them, so a misspelt
key can no longer land, silently, under a raw "other".

Adding a key: declare it below with its :class:`Shown`, give it words in
``grader/out/reports/words.py`` (``LABELS``), and emit it, preferably through a builder:

    from grader.model import details as D
    raise CheckFailed("...", measured=D.table({"wte": {"std": 0.05, "expected_std": 0.02}}),
                      **D.mismatch(max_abs_diff=0.3, where=[0, 2], mismatched=4))

Like the rest of ``grader.model`` this module imports nothing of the grader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Shown(str, Enum):  # noqa: UP042 - the str mixin keeps comparisons with plain strings
    """How the reports show a key's value."""

    FACT = "fact"          # a sentence among the check's facts (a number, an index, a shape)
    FIGURE = "figure"      # a picture: a figure spec, a matrix, a pair of matrices or of series
    TABLE = "table"        # rows of named scalars: {row: {column: value}}
    VALUE = "value"        # a labelled value in words (a number, a list, a small dict)
    MISTAKE = "mistake"    # the diagnosis' likely mistake, in its own box
    TRACE = "trace"        # a traceback, verbatim
    INPUTS = "inputs"      # the inputs' shapes: {name: shape}


@dataclass(frozen=True)
class DetailKey:
    """One key of the details: its name, how it is shown, and what its value holds (for check
    authors; the reader's words are in ``grader/out/reports/words.py``)."""

    name: str
    shown: Shown
    holds: str


def _keys(shown: Shown, entries: Mapping[str, str]) -> list[DetailKey]:
    return [DetailKey(name, shown, holds) for name, holds in entries.items()]


VOCABULARY: dict[str, DetailKey] = {k.name: k for k in [
    *_keys(Shown.FACT, {
        "max_abs_diff": "the largest absolute difference between yours and expected",
        "max_rel_diff": "the largest relative difference",
        "where": "the index of the largest difference (or of the first NaN/inf)",
        "actual_at": "your value at `where`",
        "expected_at": "the expected value at `where`",
        "mismatched": "how many values are outside the tolerance",
        "shape": "the shape compared",
        "tolerance": "{atol, rtol} of the comparison",
        "nonfinite": "how many NaN/inf values yours has",
        "actual_shape": "your output's shape",
        "expected_shape": "the expected shape",
        "actual": "your value (a scalar; a matrix is drawn next to `expected`)",
        "expected": "the expected value (a scalar; a matrix is drawn next to `actual`)",
        "loss": "a loss value",
        "ln_vocab": "ln(vocab_size), the loss of a uniform guess",
        "error": "what the student's code raised: {type, message, where, traceback}",
    }),
    *_keys(Shown.MISTAKE, {
        "likely_mistake": "the diagnosed mistake: {id, name, hint, course} (see mistake())",
    }),
    *_keys(Shown.TRACE, {
        "traceback": "a grader bug's traceback (instructor only)",
    }),
    *_keys(Shown.INPUTS, {
        "inputs": "the inputs' shapes, {name: shape}",
    }),
    *_keys(Shown.FIGURE, {
        "weights": "attention weights without a mask: {actual, expected} matrices",
        "weights_masked": "attention weights with a mask: {actual, expected} matrices",
        "heatmap": "the student's attention weights (a matrix), drawn next to `mask`",
        "mask": "the mask (1 = may attend), drawn next to `heatmap`",
        "curves": "loss curves, {student: [...], reference: [...]}",
        "losses": "a loss curve",
        "train_losses": "the training loss per step",
        "val_losses": "the validation loss per evaluation",
        "lrs": "learning rates per step, {student: [...], expected: [...]}",
        "grad_norms": "gradient norms per step, {student: [...], reference: [...]}",
    }),
    *_keys(Shown.TABLE, {
        "measured": "measured statistics per parameter, {name: {std, expected_std, ...}}",
        "heldout": "held-out metrics, {student: {...}, reference: {...}}",
    }),
    *_keys(Shown.VALUE, {
        "diagnosis": "why no likely mistake could be named",
        "diagnosis_error": "the diagnosis itself failed (a grader bug)",
        "cases": "how many cases were checked",
        "max_row_sum_error": "the largest |row sum - 1| of the attention weights",
        "cuts": "the sequence lengths tried",
        "changed": "which positions changed when the future changed",
        "num_parameters": "the model's number of parameters",
        "parameters": "parameter names and shapes",
        "chi_square": "the chi-square statistic of the starts' spread",
        "counts": "counts of starts in ten equal bins of the data",
        "starts_seen": "the window starts that were drawn",
        "steps": "how many steps were checked or run",
        "pre_clip": "the gradient norm the step's backward produced, before clipping",
        "at_step": "the gradient norm the optimizer step applied",
        "grad_clip": "the clipping threshold asked for",
        "stale_steps": "steps whose backward pass saw the previous step's gradients",
        "evaluations": "how many evaluations were expected",
        "loss_ratio": "your held-out loss divided by the reference loop's",
        "grad_norm_ratio": "your recorded gradient norms divided by the reference's (median)",
        "parameter_travel_ratio": "how far your loop moved the parameters, relative to the "
                                  "reference loop",
        "limits": "the bounds the ratios must keep, {ratio name: bound or [low, high]}",
        "heldout_loss": "held-out loss, {student, reference}",
        "first_loss": "the loss at the first step",
        "margin": "how much above the reference's loss is allowed",
        "device": "the device the run used",
        "seed": "the seed of the run",
        "seconds": "how long the run took",
        "chunks": "the sizes of the chunks fed",
        "lengths": "the cache lengths after each chunk",
        "tokens": "token ids",
        "tokens_fed_cached": "tokens fed to the model per step, with the cache",
        "tokens_fed_uncached": "tokens fed to the model per step, without the cache",
        "used": "what the cache was found to hold",
        "calls": "the model calls seen",
        "case": "the name of the input case that failed",
        "text_start": "the beginning of the text the case used",
        "first_difference": "the index of the first merge that differs",
        "entries": "how many entries were compared",
        "texts": "how many texts were encoded",
        "rates": "tokens per second, {yours, reference, tiktoken}",
        "tie_effect": "what changing the tied embedding did to the logits: {rows, "
                      "max_change_tied_rows, max_change_other_rows}",
        "reported_num_parameters": "the number of parameters the student's model reports",
        "length": "the cache's length at the end",
    }),
]}


class UnknownDetail(TypeError):
    """A check emitted a details key that the reports have no words for."""


def unknown_keys(details: Mapping[str, Any]) -> list[str]:
    """The keys of ``details`` that are not in :data:`VOCABULARY`, in their order."""
    return [k for k in details if k not in VOCABULARY]


def checked(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` as a dict, after making sure every key is declared (:class:`UnknownDetail`
    names the first one that is not, and where to declare it)."""
    bad = unknown_keys(details)
    if bad:
        raise UnknownDetail(f"details key {bad[0]!r} is not declared in grader/model/details.py "
                            f"(VOCABULARY), so no report can say it in words")
    return dict(details)


def shown(key: str) -> Shown | None:
    """How the reports show ``key`` (None for an undeclared key)."""
    entry = VOCABULARY.get(key)
    return entry.shown if entry else None


# ------------------------------------------------------------------------------ builders


def mistake(id: str, name: str, hint: str = "", course: str = "", **about: Any
            ) -> dict[str, Any]:
    """The value of ``likely_mistake``: the mistake's id (how two failures are recognised as
    the same mistake), its name in the student's words, a hint and where the course teaches
    it; ``about`` adds context such as ``parameter="attn.c_proj.weight"``."""
    out: dict[str, Any] = {"id": str(id), "name": str(name), "hint": str(hint),
                           "course": str(course)}
    out.update({str(k): v for k, v in about.items()})
    return out


def error(type: str, message: str, where: str = "", traceback: str = "") -> dict[str, str]:
    """The value of ``error``: what the student's code raised, and where (``"block.py, line
    109, in __init__"``)."""
    out = {"type": str(type), "message": str(message)}
    if where:
        out["where"] = str(where)
    if traceback:
        out["traceback"] = str(traceback)
    return out


def mismatch(*, max_abs_diff: float, where: Iterable[int] | None = None,
             actual_at: float | None = None, expected_at: float | None = None,
             mismatched: int | None = None, shape: Iterable[int] | None = None,
             atol: float | None = None, rtol: float | None = None,
             max_rel_diff: float | None = None, nonfinite: int | None = None
             ) -> dict[str, Any]:
    """The facts of a failed comparison, under the keys the reports read (pass with ``**``)."""
    out: dict[str, Any] = {"max_abs_diff": float(max_abs_diff)}
    if where is not None:
        out["where"] = [int(i) for i in where]
    if actual_at is not None:
        out["actual_at"] = float(actual_at)
    if expected_at is not None:
        out["expected_at"] = float(expected_at)
    if max_rel_diff is not None:
        out["max_rel_diff"] = float(max_rel_diff)
    if mismatched is not None:
        out["mismatched"] = int(mismatched)
    if shape is not None:
        out["shape"] = [int(s) for s in shape]
    if atol is not None or rtol is not None:
        out["tolerance"] = {"atol": float(atol or 0.0), "rtol": float(rtol or 0.0)}
    if nonfinite is not None:
        out["nonfinite"] = int(nonfinite)
    return out


def table(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A table value: ``{row name: {column name: scalar}}``. Raises ``ValueError`` on a cell
    that is not a scalar (the reports would have to fall back to raw JSON)."""
    out: dict[str, dict[str, Any]] = {}
    for name, row in rows.items():
        if not isinstance(row, Mapping) or not row:
            raise ValueError(f"table row {name!r} must be a non-empty mapping of scalars")
        for column, value in row.items():
            if not (value is None or isinstance(value, (bool, int, float, str))):
                raise ValueError(f"table cell {name!r}/{column!r} is not a scalar: {value!r}")
        out[str(name)] = {str(c): v for c, v in row.items()}
    return out


def series(**named: Iterable[Any]) -> dict[str, list[Any]]:
    """Named series over the same steps, drawn as a line chart (``student=[...],
    reference=[...]``; ``reference`` and ``expected`` are the dashed yardsticks)."""
    return {name: list(values) for name, values in named.items()}


def bounds(**limits: float | tuple[float, float]) -> dict[str, Any]:
    """The value of ``limits``: ``loss_ratio=1.15`` (at most) or ``grad_norm_ratio=(0.5, 2)``
    (between)."""
    return {name: list(v) if isinstance(v, (tuple, list)) else v for name, v in limits.items()}
