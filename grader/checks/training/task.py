"""The probes' task: Stage 12's Max/Min/First/Second/Last questions, one example per line
(``stage12-training-dynamics.md``), and the grader's own measure of what a model learned."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grader.checks.harness import seeded

# Stage 12's task: "Max ( 1 , 6 , 2 ) = 6" and its answer, one example per line. 20 symbols:
# the digits, the five operations and the syntax. TOKEN gives each symbol's canonical id; the
# ids a probe's data uses are a seeded permutation of these (see task_data), so an answer is
# any of the 20 ids, not a digit's own.
OPS = ("Max", "Min", "First", "Second", "Last")
VOCAB = tuple(str(d) for d in range(10)) + OPS + ("(", ",", ")", "=", "\n")
TOKEN = {t: i for i, t in enumerate(VOCAB)}
V = len(VOCAB)
EXAMPLE_LEN = 11  # op ( a , b , c ) = answer \n
HELDOUT_FRACTION = 0.2  # 1000 of the 5000 distinct examples are never trained on


def _answer(op: int, a: int, b: int, c: int) -> int:
    return (max(a, b, c), min(a, b, c), a, b, c)[op]


def _encode(op: int, a: int, b: int, c: int) -> list[int]:
    return [10 + op, TOKEN["("], a, TOKEN[","], b, TOKEN[","], c, TOKEN[")"], TOKEN["="],
            _answer(op, a, b, c), TOKEN["\n"]]


def task_data(seed: int, train_tokens: int = 22_000, val_tokens: int = 4_400
              ) -> dict[str, torch.Tensor]:
    """The probe's data, the same on every machine for one ``seed``: all 5 x 10^3 examples split
    into a training and a held-out set, a training stream of random training examples, a
    validation stream of held-out examples (what ``train`` evaluates on), and every held-out
    example as a prompt ``"\\n op ( a , b , c ) ="`` with its answer.

    ``seed`` also picks which id stands for which symbol (a permutation of the 20): the task's
    5,000 examples are few and public, so parameters trained offline on all of them would
    answer any split; under ids the run draws, they answer nothing, and only training on
    this run's data helps (a permutation of ids changes nothing of how a model learns)."""
    g = seeded(seed)
    examples = [(op, a, b, c) for op in range(5) for a in range(10) for b in range(10)
                for c in range(10)]
    order = torch.randperm(len(examples), generator=g).tolist()
    n_held = int(len(examples) * HELDOUT_FRACTION)
    held = [examples[i] for i in order[:n_held]]
    train = [examples[i] for i in order[n_held:]]

    def stream(pool: list[tuple[int, int, int, int]], n_tokens: int) -> torch.Tensor:
        pick = torch.randint(len(pool), (n_tokens // EXAMPLE_LEN,), generator=g).tolist()
        return torch.tensor([t for i in pick for t in _encode(*pool[i])], dtype=torch.long)

    prompts = torch.tensor([[TOKEN["\n"]] + _encode(*e)[:9] for e in held], dtype=torch.long)
    answers = torch.tensor([_answer(*e) for e in held], dtype=torch.long)
    data = {"train_data": stream(train, train_tokens), "val_data": stream(held, val_tokens),
            "prompts": prompts, "answers": answers}
    symbols = torch.randperm(V, generator=g)  # drawn last: the split and streams stay the same
    return {name: symbols[t] for name, t in data.items()}


def answer_metrics(model: torch.nn.Module, prompts: torch.Tensor, answers: torch.Tensor
                   ) -> tuple[float, float]:
    """Cross-entropy and accuracy of the model's next-token prediction after ``=`` on the
    held-out prompts: the grader's own judgement of what was learned, with its own targets (so
    a loop that trains on unshifted targets cannot look good here)."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(prompts.to(device))[0][:, -1].float().cpu()
    return (float(F.cross_entropy(logits, answers)),
            float((logits.argmax(-1) == answers).float().mean()))


