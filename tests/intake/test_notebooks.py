"""Notebooks as submissions: reading, IPython syntax, skip tags, which notebook provides which
assignment, and every broken-notebook case graded (in one submission: the other assignments
still get graded)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import CORRECT, grade_folder

from grader.checks import graded_names
from grader.intake.discover import discover
from grader.intake.notebooks import (
    assign,
    defined_names,
    module_source,
    module_to_notebook,
    notebook_to_module,
    python_of,
    read_notebook,
)
from grader.intake.notebooks.cells import Cell
from grader.isolation.sandbox import isolation_available


def _nb(*cells, tags=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title")]
    for i, src in enumerate(cells):
        cell = nbformat.v4.new_code_cell(src)
        if tags and i in tags:
            cell.metadata["tags"] = tags[i]
        nb.cells.append(cell)
    return nb


def _write(tmp_path, name, nb):
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------ IPython syntax, no kernel


def test_magics_and_shell_escapes_become_python_and_keep_line_numbers():
    src = ("x = 1\n!pip install torch\n%timeit f(x)\n%time y = 2\nfiles = !ls\n"
           "%matplotlib inline\nt = %time len('ab')\n%run attention.ipynb\nf?\nz = 3")
    python, skipped, notes = python_of(src)
    assert not skipped
    lines = python.splitlines()
    assert len(lines) == len(src.splitlines())  # errors keep pointing at the student's lines
    assert lines[1] == "pass" and lines[2] == "pass"  # no shell, no timeit
    assert lines[3] == "y = 2" and lines[4] == "files = []" and lines[6] == "t = (len('ab'))"
    assert lines[7] == "from attention import *" and lines[9] == "z = 3"
    assert "get_ipython" not in python and "pip" not in python.replace("`!pip", "")
    assert any("shell escape" in n for n in notes)
    compile(python, "cell", "exec")


def test_cell_magics_run_their_python_body_or_are_skipped():
    python, skipped, _ = python_of("\n%%time\nw = 4\n%timeit w\n")
    assert not skipped and python.splitlines()[2] == "w = 4" and "timeit" not in python
    for magic in ("%%bash\necho hi", "%%writefile x.py\nprint(1)", "%%html\n<b>x</b>",
                  "%%timeit\nsum(range(9))"):
        python, skipped, _ = python_of(magic)
        assert python == "" and skipped.startswith("it is a `%%")


def test_defined_names_finds_top_level_bindings_only():
    src = ("import torch\nfrom torch import nn as N\nclass A: pass\ndef f():\n    inner = 1\n"
           "x, (y, z) = 1, (2, 3)\nif True:\n    B = 1\ntry:\n    C = 2\nexcept Exception:\n"
           "    D = 3\nfor i in range(2):\n    pass")
    names = defined_names(src)
    assert names == {"torch", "N", "A", "f", "x", "y", "z", "B", "C", "D", "i"}
    assert "torch" not in defined_names(src, imports=False)
    assert defined_names("def broken(:\nclass Still:") == {"broken", "Still"}


def test_skip_tags_and_skip_comments(tmp_path):
    nb = _nb("a = 1", "b = 2", "c = 3", "# skip-grading\nd = 4", "#Skip_Grading\ne = 5", "f = 6",
             tags={1: ["skip-grading"], 2: ["Skip_Grading"], 5: ["no grade"]})
    read = read_notebook(_write(tmp_path, "x.ipynb", nb))
    assert [c.number for c in read.code_cells()] == [2]
    assert all(c.skipped for c in read.cells[1:])
    assert "tagged `skip-grading`" in read.cells[1].skipped


# ------------------------------------------------------------------------- reading the file


def test_json_nested_far_deeper_than_a_notebook_is_refused_with_a_message(tmp_path):
    """'[' * 100000 crashed the judging process with a RecursionError (every check an error,
    the student told nothing useful); a depth under that reached the schema's recursion."""
    (tmp_path / "deep.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    assert "nested thousands of levels" in read_notebook(tmp_path / "deep.ipynb").problem
    (tmp_path / "d65.ipynb").write_text('{"cells": [], "metadata": ' + "[" * 80 + "]" * 80
                                        + ', "nbformat": 4, "nbformat_minor": 5}')
    assert "more than 64 levels deep" in read_notebook(tmp_path / "d65.ipynb").problem
    nb = _nb("x = 1")
    assert not read_notebook(_write(tmp_path, "ok.ipynb", nb)).problem


def test_broken_files_get_clear_messages(tmp_path):
    (tmp_path / "a.ipynb").write_text('{"cells": [], "nbformat": 4,')
    assert "not valid JSON (line 1, column" in read_notebook(tmp_path / "a.ipynb").problem
    (tmp_path / "b.ipynb").write_text('["not", "a", "notebook"]')
    assert "not a Jupyter notebook" in read_notebook(tmp_path / "b.ipynb").problem
    (tmp_path / "c.ipynb").write_bytes(b"\xff\xfe{}")
    assert "not UTF-8" in read_notebook(tmp_path / "c.ipynb").problem
    nb = _nb("x <- 1")
    nb.metadata["kernelspec"] = {"name": "ir", "language": "R", "display_name": "R"}
    assert "is a R notebook" in read_notebook(_write(tmp_path, "d.ipynb", nb)).problem
    raw = json.loads(nbformat.writes(_nb("x = 1")))
    raw["nbformat"] = 9
    (tmp_path / "e.ipynb").write_text(json.dumps(raw))
    assert "format 9" in read_notebook(tmp_path / "e.ipynb").problem


def test_an_old_v3_notebook_is_converted(tmp_path):
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"}, "worksheets": [
        {"metadata": {}, "cells": [{"cell_type": "code", "collapsed": False, "language": "python",
                                    "input": ["def f(x):\n", "    return 2 * x"],
                                    "metadata": {}, "outputs": []}]}]}
    (tmp_path / "old.ipynb").write_text(json.dumps(v3))
    read = read_notebook(tmp_path / "old.ipynb")
    assert not read.problem and "old notebook format v3" in read.notes[0]
    assert read.code_cells()[0].defines == {"f"}
    v3["worksheets"] = "garbage"
    (tmp_path / "older.ipynb").write_text(json.dumps(v3))
    assert "could not be converted" in read_notebook(tmp_path / "older.ipynb").problem


def test_module_and_notebook_conversions_keep_the_code(tmp_path):
    source = (CORRECT / "block.py").read_text()
    nb = module_to_notebook(source)
    assert nb.cells[0].cell_type == "markdown"
    kinds = [c.source.split("\n")[0] for c in nb.cells[1:]]
    assert kinds[0].startswith("import") and any(k.startswith("class GPT(") for k in kinds)
    path = _write(tmp_path, "block.ipynb", nb)
    back = notebook_to_module(path)
    body = [ln for ln in back.splitlines() if ln.strip() and not ln.startswith("# %% cell")]
    original = source.split('"""', 2)[2]  # without the module docstring
    assert body[1:] == [ln for ln in original.splitlines() if ln.strip()]


def test_which_notebook_provides_which_assignment(tmp_path):
    (tmp_path / "attention.py").write_text("x = 1\n")
    _write(tmp_path, "attention.ipynb", _nb("y = 1"))
    _write(tmp_path, "gpt.ipynb", _nb("def causal_mask(t_q, t_k):\n    pass",
                                      "class MLP: pass\nclass GPT: pass"))
    _write(tmp_path, "scratch.ipynb", _nb("print('hello')"))
    sub = discover(tmp_path, ["attention", "causal_mask", "block", "kv_cache"], graded_names())
    assert sub.files["attention"].path.name == "attention.py"  # a module wins over a notebook
    assert any("attention.ipynb is not graded" in n for n in sub.notes)
    assert sub.files["causal_mask"].display == sub.files["block"].display == "gpt.ipynb"
    gpt = sub.files["block"].notebook
    assert gpt.module == "gpt" and gpt.provides[:2] == ["causal_mask", "block"]
    assert "no kv_cache.ipynb either" in sub.files["kv_cache"].problem
    assert "gpt.ipynb, scratch.ipynb" in sub.files["kv_cache"].problem
    # A notebook named like a module the grader itself imports is given another module name.
    read = [read_notebook(_write(tmp_path, "json.ipynb", _nb("class MLP: pass")))]
    assign(read, ["block"], set(), {"json.ipynb"}, graded_names())
    assert read[0].module == "json_notebook"


def test_generated_module_keeps_cells_apart_and_points_at_them(tmp_path):
    read = read_notebook(_write(tmp_path, "n.ipynb", _nb(
        "from __future__ import annotations", "def f(x) -> Undefined:\n    return 1 / x",
        "display(f)", "raise ValueError('a test cell')", "g = 2")))
    read.code_cells()[3].outcome = {"status": "error"}
    namespace = {"__name__": "n", "__file__": str(tmp_path / "n.py")}
    exec(compile(module_source(read), str(tmp_path / "n.py"), "exec"), namespace)
    assert namespace["g"] == 2  # the cell that raised when run did not stop the module
    with pytest.raises(ZeroDivisionError) as info:
        namespace["f"](0)
    frame = info.traceback[-1]
    assert str(frame.path).endswith("n.ipynb, cell 3") and frame.lineno == 1  # 0-based


# ------------------------------------------------------------------ graded, in the worker


def _cells_of(module: str):
    return module_to_notebook((CORRECT / f"{module}.py").read_text())


def test_broken_notebooks_point_at_the_cell_and_the_rest_is_graded(tmp_path):
    """One submission holding every broken case; each assignment gets its own message."""
    sub = tmp_path / "sub"
    sub.mkdir()
    # attention: a cell past its timeout, magics and a shell escape, a cell that kills the
    # kernel, a failing test cell, a tagged endless cell: still full marks
    nb = _cells_of("attention")
    nb.cells.insert(2, nbformat.v4.new_code_cell("import time\nwhile True:\n    time.sleep(.05)"))
    nb.cells.insert(3, nbformat.v4.new_code_cell("!pip install nothing\n%timeit 1 + 1\n"
                                                 "%time z = 3\n%matplotlib inline"))
    nb.cells.append(nbformat.v4.new_code_cell("import os\nos._exit(3)"))
    nb.cells.append(nbformat.v4.new_code_cell("assert z == 3\nraise RuntimeError('my test')"))
    endless = nbformat.v4.new_code_cell("while True:\n    pass")
    endless.metadata["tags"] = ["skip-grading"]
    nb.cells.append(endless)
    nbformat.write(nb, sub / "attention.ipynb")
    # causal_mask: the cell defining CausalSelfAttention raises; causal_mask fails when called
    nb = _cells_of("causal_mask")
    for cell in nb.cells:
        if cell.source.startswith("class CausalSelfAttention"):
            cell.source = "x = undefined_name\n" + cell.source
        cell.source = cell.source.replace("offset = t_k - t_q", "offset = t_k - t_q.nothing")
    nbformat.write(nb, sub / "causal_mask.ipynb")
    # training: no code; gpt2_loading: invalid JSON
    nb = _cells_of("training")
    nb.cells = [c for c in nb.cells if c.cell_type == "markdown"]
    nbformat.write(nb, sub / "training.ipynb")
    (sub / "gpt2_loading.ipynb").write_text(nbformat.writes(_cells_of("gpt2_loading"))[:500])

    result = grade_folder(sub, ["attention", "causal_mask", "training", "gpt2_loading"],
                          notebook_cell_timeout=2)
    att = result.assignment("attention")
    assert att.score == att.max_score and att.source == "attention.ipynb"
    report = result.environment["notebooks"]
    failed = report["attention.ipynb"]["failed_cells"]
    assert any("ran past its time limit of 2 s" in f and "`import time`" in f for f in failed)
    assert any("stopped the kernel" in f and "exited with code 3" in f for f in failed)
    assert any("raised RuntimeError at line 2: my test" in f for f in failed)
    assert report["attention.ipynb"]["kernel_starts"] == 3  # new kernels went on each time
    assert "[grader] attention.ipynb, cell" in result.log  # the student sees what failed

    cm = result.assignment("causal_mask")
    msg = cm.check("mask_table").message  # at call time: the cell and its line
    assert "AttributeError" in msg and "(causal_mask.ipynb, cell 3, line " in msg
    msg = cm.check("csa_shapes").message
    assert msg.startswith("causal_mask.ipynb: `CausalSelfAttention` is defined in cell ")
    assert "(`x = undefined_name`), which raised NameError at line 1: name 'undefined_name'" in msg

    assert "has no code for training to grade" in result.assignment("training").message
    assert "is not valid JSON" in result.assignment("gpt2_loading").message
    if isolation_available()[0]:  # the kernels ran inside the sandbox: no network, ipc sockets
        assert result.environment["isolation"].startswith("bubblewrap")


def test_a_notebook_that_runs_past_its_time_limits_gets_timeouts_not_errors(tmp_path):
    """A batch's summary counts endless loops apart from crashes: a name missing because its
    cell (or an earlier cell it needed) ran past the cell limit, or because the notebook's
    total time ran out before its cell, is a timeout; a cell that raised stays an error."""
    from grader.model.results import Status

    sub = tmp_path / "sub"
    sub.mkdir()
    nb = _cells_of("attention")
    for cell in nb.cells:
        if cell.source.startswith("class MultiHeadAttention"):
            cell.source = "import time\nwhile True:\n    time.sleep(.05)\n" + cell.source
    nbformat.write(nb, sub / "attention.ipynb")
    nb = _cells_of("causal_mask")
    for cell in nb.cells:
        if cell.source.startswith("def causal_mask"):  # defines OFFSET first, then loops
            cell.source = "OFFSET = 0\nwhile True:\n    pass\n" + cell.source
        elif cell.source.startswith("class CausalSelfAttention"):  # needs the cell above
            cell.source = "assert OFFSET == 0\n" + cell.source
    nbformat.write(nb, sub / "causal_mask.ipynb")
    result = grade_folder(sub, ["attention", "causal_mask"], notebook_cell_timeout=2)

    att = {c.id: c for c in result.assignment("attention").checks}
    sdpa = [c for c in att.values() if c.id.startswith("sdpa")]
    assert sdpa and all(c.status is Status.PASSED for c in sdpa)
    mha = [c for c in att.values() if c.id.startswith("mha")]
    assert mha and all(c.status is Status.TIMEOUT for c in mha), [c.status for c in mha]
    assert "ran past its time limit of 2 s" in mha[0].message
    cm = result.assignment("causal_mask")
    assert {c.status for c in cm.checks} == {Status.TIMEOUT}, [c.message for c in cm.checks]
    assert "which ran past its time limit" in cm.check("mask_table").message
    assert "(`OFFSET` comes from cell " in cm.check("csa_shapes").message

    # The same cell raising instead: an error, as before.
    nb = _cells_of("causal_mask")
    for cell in nb.cells:
        if cell.source.startswith("def causal_mask"):
            cell.source = "raise RuntimeError('not yet')\n" + cell.source
    nbformat.write(nb, sub / "causal_mask.ipynb")
    (sub / "attention.ipynb").unlink()
    (sub / "attention.py").write_text((CORRECT / "attention.py").read_text())
    cm = grade_folder(sub, ["causal_mask"]).assignment("causal_mask")
    assert {c.status for c in cm.checks} == {Status.ERROR}, cm.message


def test_cells_left_when_the_notebook_total_time_ran_out_are_timeouts(tmp_path):
    from grader.model.results import Status

    sub = tmp_path / "sub"
    sub.mkdir()
    nb = _cells_of("causal_mask")
    slow = [nbformat.v4.new_code_cell("import time\ntime.sleep(1.5)") for _ in range(3)]
    nb.cells[1:1] = slow
    nbformat.write(nb, sub / "causal_mask.ipynb")
    result = grade_folder(sub, ["causal_mask"], notebook_cell_timeout=2, notebook_timeout=4)
    cm = result.assignment("causal_mask")
    assert "the notebook used up its total time" in cm.message
    assert {c.status for c in cm.checks} == {Status.TIMEOUT}


def test_which_missing_names_ran_out_of_time():
    """The notebook's reading of its run: the cell blamed for a missing name, and whether a
    time limit stopped it (its own, an earlier one it needed, or the whole notebook's)."""
    from grader.intake.notebooks.reading import Notebook

    nb = Notebook(path=Path("nb.ipynb"))
    nb.cells = [Cell(index=i, source=src, python=src, defines=set(d)) for i, (src, d) in
                enumerate([("A = 1", "A"), ("B = A", "B"), ("C = 3", "C"), ("D = 4", "D")])]
    outcomes = [{"status": "timeout", "timeout": 2},
                {"status": "error", "type": "NameError", "message": "name 'A' is not defined"},
                {"status": "error", "type": "ValueError", "message": "no"},
                {"status": "not_run", "reason": "the notebook used up its total time",
                 "out_of_time": True}]
    for cell, outcome in zip(nb.cells, outcomes, strict=True):
        cell.outcome = outcome
    assert nb.ran_out_of_time("A") and nb.ran_out_of_time("B") and nb.ran_out_of_time("D")
    assert not nb.ran_out_of_time("C") and not nb.ran_out_of_time("E")
    assert "(`A` comes from cell 1" in nb.missing_message("B")
    nb.cells[3].outcome = {"status": "not_run", "reason": "the kernel had to be restarted"}
    assert not nb.ran_out_of_time("D")
    nb.timed_out = True  # the whole run went past the notebook's total time
    assert nb.ran_out_of_time("C")
