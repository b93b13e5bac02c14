"""Grades out to where instructors keep them, from the results model and the gradebook.

* :mod:`~grader.out.exports.gradescope`: a result as Gradescope's ``results.json``, and the
  autograder zip (``grader gradescope build``);
* :mod:`~grader.out.exports.prairielearn`: a result as PrairieLearn's external-grader
  ``results.json`` (``grader prairielearn grade``);
* :mod:`~grader.out.exports.tables`: the gradebook as CSV: the wide table, Canvas's and Moodle's
  import files, with an optional late policy (:mod:`~grader.out.exports.late`);
* :mod:`~grader.out.exports.feedback`: each student's report in a folder or zip named for an
  LMS bulk upload.

Everything here reads the results model (and the gradebook's plain rows) only, and is
deterministic: the same input gives byte-identical files.
"""
