"""Diagnosis: when a check fails, name the known mistake the student's output matches.

- :mod:`.catalogue`: the registry of mistakes (name, hint in the course's words, pointer to the
  course text, and how to plant each in the reference); the mistakes themselves are registered
  by their assignments (``grader/checks/<assignment>/mistakes.py``);
- :mod:`.variants`: the reference with one mistake planted, built on the trusted side;
- :mod:`.match`: the closest variant within the check's tolerance, never when the correct
  reference is within it too;
- :mod:`.hook`: :class:`Diagnosis`, what a check declares to get all of this.
"""

from grader.diagnosis.catalogue import CATALOGUE, Mistake, affecting, likely, mistake, register
from grader.diagnosis.hook import NO_MATCH, Diagnosis, jointly

__all__ = ["CATALOGUE", "NO_MATCH", "Diagnosis", "Mistake", "affecting", "jointly", "likely",
           "mistake", "register"]
