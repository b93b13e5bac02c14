"""Checkpoint quizzes: YAML question banks from the course texts, answer checking that never
evaluates what a learner types, parameterised questions with worked solutions, practice with two
tries and time-spaced reviews, answer sheets graded into the results model, and a proof over many
seeds (``grader quiz check``) with coverage of the course's items.

Modules: :mod:`.model` (dataclasses, tolerance and precision), :mod:`.schema` (bank validation),
:mod:`.bank` (loading), :mod:`.numbers` (the safe numeric parser), :mod:`.units` (unit words),
:mod:`.answers` (checking answers), :mod:`.generators` (parameterised questions, one module per
topic), :mod:`.instance` (sound variants, practice and sheet streams), :mod:`.present` (answer
formats, progress table), :mod:`.store` (SQLite history), :mod:`.scheduler` (what to ask next:
weakness and SM-2 due dates), :mod:`.practice` (the interactive loop), :mod:`.sheets` (take and
grade), :mod:`.audit` (``quiz check``), :mod:`.coverage` (course items), :mod:`.cli`.
"""
