"""The worker: a separate process that imports a student's modules and runs them on inputs.

Everything in this package is visible to the student's code (it runs beside it), so it holds no
reference solution, no expected value and no verdict: it returns data only. It imports nothing
from the rest of ``grader``.
"""
