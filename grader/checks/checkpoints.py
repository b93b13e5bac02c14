"""GPT-2 checkpoints in the Hugging Face format, made by the grader itself (trusted side).

The GPT-2 loading assignment is graded on checkpoints that look exactly like what
``GPT2LMHeadModel.save_pretrained`` writes (``model.safetensors`` with Hugging Face names, the
Conv1D weights stored ``(in, out)``, no ``lm_head.weight``; and ``config.json``), filled with
seeded random values. They are written here without ``transformers`` (a dev extra only), tensor
by tensor in Hugging Face's own naming, so this module knows the file format and nothing of how
a loader maps it onto the course's model.

It also finds the real ``gpt2`` weights on local disk when an instructor provides them
(``grader run --gpt2-weights``, or a Hugging Face cache that already holds them). Nothing is
ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

SAFETENSORS = "model.safetensors"
CONFIG = "config.json"


@dataclass(frozen=True)
class HFShape:
    """The sizes of a GPT-2 (Hugging Face's names for them)."""

    n_positions: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768

    def key(self) -> str:
        return f"{self.n_layer}x{self.n_head}x{self.n_embd}-v{self.vocab_size}-p{self.n_positions}"


GPT2_SMALL = HFShape()


def hf_config(shape: HFShape) -> dict:
    """The ``config.json`` that transformers 5 writes for ``GPT2LMHeadModel`` of this shape."""
    return {
        "activation_function": "gelu_new", "add_cross_attention": False,
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1, "bos_token_id": 50256, "dtype": "float32", "embd_pdrop": 0.1,
        "eos_token_id": 50256, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2", "n_ctx": shape.n_positions, "n_embd": shape.n_embd,
        "n_head": shape.n_head, "n_inner": None, "n_layer": shape.n_layer,
        "n_positions": shape.n_positions, "pad_token_id": None, "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
        "summary_type": "cls_index", "summary_use_proj": True, "tie_word_embeddings": True,
        "use_cache": True, "vocab_size": shape.vocab_size,
    }


def hf_shapes(shape: HFShape, *, prefix: bool = True, buffers: bool = False,
              lm_head: bool = False) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Names and shapes of a Hugging Face GPT-2 state dict, in the order transformers lists them.

    ``prefix``: names start with ``transformer.`` (``GPT2LMHeadModel``) or not (``GPT2Model``,
    and the real ``gpt2`` file). ``buffers``: include each layer's ``attn.bias`` (the causal mask,
    ``(1, 1, n_positions, n_positions)``) and ``attn.masked_bias`` (a scalar), as transformers
    wrote them before version 4.x dropped them. ``lm_head``: include ``lm_head.weight``.
    """
    p = "transformer." if prefix else ""
    C, P = shape.n_embd, shape.n_positions
    yield f"{p}wte.weight", (shape.vocab_size, C)
    yield f"{p}wpe.weight", (P, C)
    for i in range(shape.n_layer):
        h = f"{p}h.{i}."
        yield h + "ln_1.weight", (C,)
        yield h + "ln_1.bias", (C,)
        if buffers:
            yield h + "attn.bias", (1, 1, P, P)
            yield h + "attn.masked_bias", ()
        # Conv1D: (in, out).
        yield h + "attn.c_attn.weight", (C, 3 * C)
        yield h + "attn.c_attn.bias", (3 * C,)
        yield h + "attn.c_proj.weight", (C, C)
        yield h + "attn.c_proj.bias", (C,)
        yield h + "ln_2.weight", (C,)
        yield h + "ln_2.bias", (C,)
        yield h + "mlp.c_fc.weight", (C, 4 * C)
        yield h + "mlp.c_fc.bias", (4 * C,)
        yield h + "mlp.c_proj.weight", (4 * C, C)
        yield h + "mlp.c_proj.bias", (C,)
    yield f"{p}ln_f.weight", (C,)
    yield f"{p}ln_f.bias", (C,)
    if lm_head:
        yield "lm_head.weight", (shape.vocab_size, C)


def _value(name: str, size: tuple[int, ...], rng: np.random.Generator, std: float
           ) -> torch.Tensor:
    if name.endswith(".attn.bias"):
        return torch.ones(size, dtype=torch.bool).tril().to(torch.float32)  # the causal mask
    if name.endswith(".attn.masked_bias"):
        return torch.tensor(-1e4)
    # Uniform with the given standard deviation: as good a random weight as a normal one for
    # telling loaders apart, and ~8x faster to draw with numpy's PCG64 (GPT-2 small's 124M:
    # 0.2 s; torch's seeded generator takes 1.5-1.8 s).
    draw = rng.random(size, dtype=np.float32)
    draw -= 0.5  # in place: no 0.5 GB temporaries at GPT-2 small's size
    draw *= np.float32(2.0 * std * math.sqrt(3.0))
    value = torch.from_numpy(draw)
    if name.split(".")[-2].startswith("ln_") and name.endswith(".weight"):
        value = 1.0 + value  # LayerNorm gains around 1, so normalisation still matters
    return value


def random_tensors(shape: HFShape, seed: int, std: float = 0.02, **layout: bool
                   ) -> Iterator[tuple[str, torch.Tensor]]:
    """The seeded random tensors of a Hugging Face GPT-2 state dict, one at a time, in the order
    of :func:`hf_shapes` (``layout`` as there).

    The weights do not depend on the layout: buffers take no random draws and ``lm_head.weight``,
    when present, is ``wte``'s tensor (as in HF), so every layout of one seed holds the same
    model. Weights are uniform with mean 0 and standard deviation ``std``; LayerNorm gains
    1 plus such a draw.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    wte = None
    for name, size in hf_shapes(shape, **layout):
        if name == "lm_head.weight":
            yield name, wte
            continue
        value = _value(name, size, rng, std)
        if name.endswith("wte.weight"):
            wte = value
        yield name, value


def random_state_dict(shape: HFShape, seed: int, std: float = 0.02, **layout: bool
                      ) -> dict[str, torch.Tensor]:
    """:func:`random_tensors` as a dict."""
    return dict(random_tensors(shape, seed, std, **layout))


def relayout(state: dict[str, torch.Tensor], shape: HFShape, **layout: bool
             ) -> dict[str, torch.Tensor]:
    """The same weights in another layout of :func:`hf_shapes` (names with or without
    ``transformer.``, with or without the buffers and ``lm_head.weight``); buffers get their fixed
    values and ``lm_head.weight`` is ``wte``'s tensor."""
    bare = {n.removeprefix("transformer."): t for n, t in state.items()}
    out = {}
    for name, size in hf_shapes(shape, **layout):
        key = name.removeprefix("transformer.")
        if key == "lm_head.weight":
            out[name] = bare["wte.weight"]
        elif key.endswith((".attn.bias", ".attn.masked_bias")):
            out[name] = _value(name, size, np.random.Generator(np.random.PCG64(0)), 0.0)
        else:
            out[name] = bare[key]
    return out


_WRITE_CHUNK = 16 * 2**20


def write_safetensors(path: Path, names_and_shapes: list[tuple[str, tuple[int, ...]]],
                      tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Write float32 ``tensors`` (yielded in the order of ``names_and_shapes``) as a
    ``.safetensors`` file, one at a time, so a 0.5 GB checkpoint is never held twice in memory.
    The file appears under its name only once complete."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, size in names_and_shapes:
        n = 4 * math.prod(size)
        header[name] = {"dtype": "F32", "shape": list(size), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    # A name of its own (two processes may build the same checkpoint at once), removed on any
    # failure: a full disk or a killed build leaves no half file behind.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        _write_into(os.fdopen(fd, "wb"), raw, names_and_shapes, tensors)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_into(f, raw: bytes, names_and_shapes: list[tuple[str, tuple[int, ...]]],
                tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    with f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for (name, size), (got, tensor) in zip(names_and_shapes, tensors, strict=True):
            if got != name or tuple(tensor.shape) != tuple(size):
                raise ValueError(f"{got} {tuple(tensor.shape)} given where {name} {size} belongs")
            data = memoryview(tensor.detach().to(torch.float32).contiguous().numpy()).cast("B")
            # In pieces: one write() of a 150 MB tensor takes ~6x longer than 16 MB writes.
            for start in range(0, len(data), _WRITE_CHUNK):
                f.write(data[start:start + _WRITE_CHUNK])


def write_checkpoint(folder: Path, shape: HFShape, seed: int, std: float = 0.02, *,
                     prefix: bool = True, buffers: bool = False, config: dict | None = None,
                     tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` of a GPT-2 into ``folder``: the seeded
    random one of :func:`random_tensors`, or the given ``tensors`` (a state dict with HF names,
    written as given). ``config`` replaces the ``config.json`` of :func:`hf_config`."""
    folder.mkdir(parents=True, exist_ok=True)
    if tensors is None:
        names = list(hf_shapes(shape, prefix=prefix, buffers=buffers))
        stream: Iterable[tuple[str, torch.Tensor]] = random_tensors(
            shape, seed, std, prefix=prefix, buffers=buffers)
    else:
        names = [(n, tuple(t.shape)) for n, t in tensors.items()]
        stream = tensors.items()
    write_safetensors(folder / SAFETENSORS, names, stream)
    (folder / CONFIG).write_text(json.dumps(hf_config(shape) if config is None else config,
                                            indent=2))
    return folder


# ---------------------------------------------------------------- built once per store


_DRAW_VERSION = "uniform-pcg64"


def user_cache_dir(environ: dict[str, str] | None = None) -> Path:
    """Where checkpoints the grader builds are kept between runs: ``$XDG_CACHE_HOME/grader``,
    else ``~/.cache/grader`` (the XDG convention), folder ``checkpoints``. GPT-2 small's seeded
    random checkpoint (0.5 GB, the same for every grading: the grading's secret seed draws the
    inputs, not these weights) is then built once per machine, not once per ``grader run``."""
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser())
    return base / "grader" / "checkpoints"


def _whole_file(path: Path, shape: HFShape, layout: dict[str, bool]) -> bool:
    """Whether ``path`` is a whole ``.safetensors`` file of ``shape``'s tensors (a kept folder
    may hold a file another process was killed writing, or one cut short by a full disk)."""
    try:
        with open(path, "rb") as f:
            (header,) = struct.unpack("<Q", f.read(8))
        data = sum(4 * math.prod(size) for _, size in hf_shapes(shape, **layout))
        return path.stat().st_size == 8 + header + data
    except (OSError, struct.error):
        return False


class CheckpointStore:
    """Checkpoints built once and reused by every grading that holds this store (a batch grades
    many submissions with the same 124M checkpoint): per-grading state passed explicitly
    (``CheckSettings.checkpoints``), not a module global.

    ``root``: a folder to build in (kept; several processes may share it, every file appears
    under its name only once complete); ``None``: a private temporary folder, removed when the
    store is closed or garbage-collected."""

    def __init__(self, root: Path | None = None, *, fallback: bool = False):
        self._given = Path(root) if root is not None else None
        self._root: Path | None = self._given
        # fallback: a given root that cannot be written (a full disk, a read-only home) gives
        # way to a private temporary folder instead of failing the check.
        self._fallback = fallback
        self._lock = threading.Lock()
        self._built: dict[str, Path] = {}
        self._finalizer: weakref.finalize | None = None

    def _folder(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="grader-checkpoints-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._root), True)
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def checkpoint(self, shape: HFShape, seed: int, std: float = 0.02, **layout: bool) -> Path:
        """:func:`write_checkpoint` into this store, built on first use and reused after."""
        # The version names how the weights are drawn: a kept folder of an older draw is not
        # this checkpoint.
        key = json.dumps([_DRAW_VERSION, asdict(shape), seed, std, sorted(layout.items())])
        with self._lock:
            if key not in self._built:
                try:
                    self._built[key] = self._build(key, shape, seed, std, layout)
                except OSError:
                    if not self._fallback or self._given is None:
                        raise
                    self._given = self._root = None
                    self._built[key] = self._build(key, shape, seed, std, layout)
            return self._built[key]

    def _build(self, key: str, shape: HFShape, seed: int, std: float,
               layout: dict[str, bool]) -> Path:
        name = "ckpt-" + hashlib.sha256(key.encode()).hexdigest()[:16]
        folder = self._folder() / name
        if not ((folder / CONFIG).is_file()
                and _whole_file(folder / SAFETENSORS, shape, layout)):
            write_checkpoint(folder, shape, seed, std, **layout)
        # Readable by the worker's uid once linked into its folder, and a kept store by the
        # judge's uid it is lent to (whatever the builder's umask). Only where needed: a folder
        # lent read-only (another user's files) is used as it is.
        for item in folder.iterdir():
            if item.stat().st_mode & 0o444 != 0o444:
                item.chmod(0o644)
        if self._given is not None:
            for d in (self._root, folder):
                if d.stat().st_mode & 0o555 != 0o555:
                    d.chmod(0o755)
        return folder

    @property
    def built_privately(self) -> bool:
        """Whether a checkpoint was built in a private temporary folder: no root was given, or
        the given one lacked it and could not be written (e.g. the user's cache lent read-only
        to a judge). Such a checkpoint is removed with the store; the next run builds it again."""
        return self._given is None and bool(self._built)

    def __getstate__(self) -> dict:
        # Sent to a judging process: the copy builds in (or reuses) the same folder and never
        # removes it; the owner does.
        return {"root": str(self._folder()), "fallback": self._fallback}

    def __setstate__(self, state: dict) -> None:
        self.__init__(Path(state["root"]), fallback=bool(state.get("fallback")))

    def close(self) -> None:
        """Remove a private temporary folder (a given ``root`` is kept)."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer, self._root = None, self._given
        self._built.clear()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def link_into(folder: Path, target: Path, names: tuple[str, ...] = (SAFETENSORS, CONFIG)
              ) -> None:
    """Make ``target`` a folder with the files ``names`` of ``folder`` (symlinks resolved, as in
    a Hugging Face cache), hard-linked when on the same file system and copied otherwise (no
    0.5 GB copy when it can be avoided)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        item = Path(folder) / name
        if not item.is_file():
            continue
        src = item.resolve()
        dst = target / item.name
        if dst.exists():
            dst.unlink()
        st = src.stat()
        # A hard link shares the inode, whose mode the worker's folder then sets: only link our
        # own, already world-readable files; copy anything else (e.g. another user's cache).
        if st.st_uid == os.getuid() and st.st_mode & 0o004:
            try:
                os.link(src, dst)
                continue
            except OSError:
                pass
        shutil.copyfile(src, dst)


# ---------------------------------------------------------------- the real gpt2 weights


def find_real_gpt2(explicit: Path | str | None = None, environ: dict[str, str] | None = None
                   ) -> tuple[Path | None, str]:
    """The local folder of the real ``gpt2`` weights, or ``None`` and the reason.

    Looks, in order, at ``explicit`` (the grading's ``CheckSettings.gpt2_weights``: a folder
    with ``model.safetensors`` and ``config.json``) and at the Hugging Face cache
    (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``: the cache's own
    convention) for ``models--gpt2`` or ``models--openai-community--gpt2`` with both files in one
    snapshot. Only reads the local disk.
    """
    env = os.environ if environ is None else environ
    if explicit:
        folder = Path(explicit).expanduser()
        if _complete(folder):
            return folder, f"--gpt2-weights {folder}"
        return None, (f"--gpt2-weights {folder} does not hold both {SAFETENSORS} and {CONFIG}")
    if env.get("HF_HUB_CACHE"):
        hub = Path(env["HF_HUB_CACHE"]).expanduser()
    elif env.get("HF_HOME"):
        hub = Path(env["HF_HOME"]).expanduser() / "hub"
    else:
        hub = Path("~/.cache/huggingface/hub").expanduser()
    for repo in ("models--gpt2", "models--openai-community--gpt2"):
        snapshots = hub / repo / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = hub / repo / "refs" / "main"
        preferred = [snapshots / ref.read_text().strip()] if ref.is_file() else []
        for snap in preferred + sorted(snapshots.iterdir()):
            if _complete(snap):
                return snap, f"the Hugging Face cache ({snap})"
    return None, (f"give --gpt2-weights a folder with {SAFETENSORS} and {CONFIG}, or have "
                  f"models--gpt2 in the Hugging Face cache ({hub}); nothing is downloaded")


def _complete(folder: Path) -> bool:
    return (folder / SAFETENSORS).is_file() and (folder / CONFIG).is_file()
