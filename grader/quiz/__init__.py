"""Checkpoint quizzes: YAML question banks from the course texts, answer checking that never
evaluates what a learner types, parameterised questions, weakness-based practice and answer sheets
graded into the results model.

Modules: :mod:`.model` (dataclasses), :mod:`.schema` (bank validation), :mod:`.bank` (loading),
:mod:`.answers` (the safe numeric parser and answer checking), :mod:`.params` (generators),
:mod:`.instance` (variants), :mod:`.store` (SQLite history), :mod:`.scheduler` (what to ask next),
:mod:`.practice` (the interactive loop), :mod:`.sheets` (take and grade), :mod:`.cli`.
"""
