"""grader: the course grader for "build a GPT from scratch".

Kept free of heavy imports on purpose: the sandboxed worker imports ``grader.worker`` and must not
pay for (or see) the trusted side.
"""

__version__ = "0.1.0"
