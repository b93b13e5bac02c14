"""The bundle never quotes a solution line in the grader's strings (a mistake's hint may): the
quote is elided, the module still imports, docstrings (the specification) stay."""

from __future__ import annotations

import ast

from grader.release.bundle import ELIDED, elide_quoted_solutions, find_leaks

SECRET = "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)"


def test_quoted_solution_lines_are_elided_and_the_module_still_parses(tmp_path):
    source = (
        '"""Mistakes. The spec may say: scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)"""\n'
        "SCALE = 'scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)'\n"
        "HINT = ('Divide the scores: '\n"
        "        'scores = q @ k.transpose(-2, -1) / math.sqrt(d_k). Then softmax.')\n"
        "OTHER = 'nothing to hide here'\n"
    )
    (tmp_path / "pkg").mkdir()
    path = tmp_path / "pkg" / "mistakes.py"
    path.write_text(source)
    (tmp_path / "pkg" / "clean.py").write_text("X = 'clean'\n")
    assert find_leaks(tmp_path, {SECRET})  # what the release refused before
    assert elide_quoted_solutions(tmp_path, {SECRET}) == {"pkg/mistakes.py": 2}
    text = path.read_text()
    namespace: dict = {}
    exec(compile(text, str(path), "exec"), namespace)
    assert namespace["SCALE"] == ELIDED
    assert namespace["HINT"] == f"Divide the scores: {ELIDED}. Then softmax."
    assert namespace["OTHER"] == "nothing to hide here"
    assert SECRET in ast.get_docstring(ast.parse(text))  # the specification stays
    assert find_leaks(tmp_path, {SECRET}) == []
