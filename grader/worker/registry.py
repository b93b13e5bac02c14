"""Every task the worker can run, by name: the generic ones and each assignment's own."""

from __future__ import annotations

from grader.worker import checkpoints, generation, notebook, tasks, training

TASKS: dict[str, tasks.TaskFn] = {
    **tasks.TASKS,
    **training.TASKS,
    **generation.TASKS,
    **checkpoints.TASKS,
    **notebook.TASKS,
}
