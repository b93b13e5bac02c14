"""The GPT-2 loading assignment.

The loader is tested against files that Hugging Face's ``transformers`` writes (random weights,
``save_pretrained``, offline), so neither the reference nor the grader's own checkpoint writer
is only checked against itself; the grader's writer is checked to produce files that
``transformers`` loads. Then every check passes the correct examples and fails the bug aimed at
it, the real-weights check runs on a local folder (as given by ``CheckSettings.gpt2_weights`` or
found in a Hugging Face cache) and is skipped, saying why, without one.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never download
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from conftest import CORRECT, EXAMPLES, failing, grade_folder, plant  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from grader.checks import ASSIGNMENTS, CheckSettings  # noqa: E402
from grader.checks import checkpoints as ck  # noqa: E402
from grader.checks import gpt2_loading as checks  # noqa: E402
from grader.checks.expected import LiveReference, StoredFixtures  # noqa: E402
from grader.model.results import Status  # noqa: E402
from reference import GPTConfig  # noqa: E402
from reference.gpt2_loading import load_gpt2  # noqa: E402

A = ["gpt2_loading"]
# A correct loader written differently (safe_open, load_state_dict(strict=True), errors turned
# into ValueError). Not under examples/correct-*: there every check must pass, and the
# real-weights check is skipped without local weights.
OTHER_STYLE = Path(__file__).parent / "data" / "gpt2_loading_other_style.py"
ALL = {f"gpt2_loading.{c.id}" for c in ASSIGNMENTS["gpt2_loading"].checks}


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers")


def _hf_model(transformers, cls="GPT2LMHeadModel", vocab=99, n_pos=24, n_layer=2, n_head=4,
              n_embd=32, seed=0):
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=n_pos, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        attn_implementation="eager")
    torch.manual_seed(seed)
    model = getattr(transformers, cls)(config).eval()
    with torch.no_grad():  # HF's biases start at 0 and LayerNorms at (1, 0): perturb all
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def _hf_logits(transformers, model, idx):
    if not isinstance(model, transformers.GPT2LMHeadModel):
        lm = transformers.GPT2LMHeadModel(model.config).eval()
        lm.transformer.load_state_dict(model.state_dict())
        model = lm
    with torch.no_grad():
        return model.double()(idx).logits


IDX = torch.randint(0, 99, (2, 13), generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------ the reference loader vs HF's files


@pytest.mark.parametrize("cls", ["GPT2LMHeadModel", "GPT2Model"])
def test_reference_loads_what_save_pretrained_writes(transformers, tmp_path, cls):
    hf = _hf_model(transformers, cls)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    names = set(load_file(str(tmp_path / ck.SAFETENSORS)))
    assert "lm_head.weight" not in names
    assert ("transformer.wte.weight" in names) == (cls == "GPT2LMHeadModel")
    model = load_gpt2(tmp_path)
    assert model.lm_head.weight is model.transformer.wte.weight
    with torch.no_grad():
        ours = model.double()(IDX)[0]
    assert float((ours - _hf_logits(transformers, hf, IDX)).abs().max()) < 1e-10


def test_reference_loads_a_state_dict_with_lm_head_and_old_buffers(transformers, tmp_path):
    hf = _hf_model(transformers, seed=3)
    sd = dict(hf.state_dict())
    assert "lm_head.weight" in sd
    for i in range(2):  # what transformers < 4.3x also saved
        sd[f"transformer.h.{i}.attn.bias"] = torch.ones(1, 1, 24, 24).tril()
        sd[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    config = GPTConfig(block_size=24, vocab_size=99, n_layer=2, n_head=4, n_embd=32)
    expected = _hf_logits(transformers, hf, IDX)
    with torch.no_grad():
        from_dict = load_gpt2(sd, config).double()(IDX)[0]
    save_file({k: v.contiguous() for k, v in sd.items() if k != "lm_head.weight"},
              str(tmp_path / ck.SAFETENSORS))
    (tmp_path / ck.CONFIG).write_text(hf.config.to_json_string())
    with torch.no_grad():
        from_file = load_gpt2(tmp_path).double()(IDX)[0]
    assert float((from_dict - expected).abs().max()) < 1e-10
    assert float((from_file - expected).abs().max()) < 1e-10


def test_reference_rejects_what_is_not_gpt2(tmp_path):
    config = GPTConfig(block_size=24, vocab_size=99, n_layer=2, n_head=4, n_embd=32)
    with pytest.raises(ValueError, match="GPT-2.*h.1"):
        sd = ck.random_state_dict(checks.TINY, seed=1)
        load_gpt2({k: v for k, v in sd.items() if ".h.1." not in k}, config)
    ck.write_checkpoint(tmp_path, checks.TINY, 0, tensors=checks._llama_tensors(),
                        config=checks._LLAMA_CONFIG)
    with pytest.raises(ValueError, match="GPT-2.*llama"):
        load_gpt2(tmp_path)


# ------------------------------------------------------------ the grader's writer vs transformers


@pytest.mark.parametrize("prefix", [True, False])
def test_grader_checkpoints_are_what_transformers_writes_and_reads(transformers, tmp_path,
                                                                   prefix):
    shape = checks.TINY
    ck.write_checkpoint(tmp_path, shape, seed=5, std=0.2, prefix=prefix, buffers=False)
    cls = "GPT2LMHeadModel" if prefix else "GPT2Model"
    hf_model = _hf_model(transformers, cls)
    want = {k: tuple(v.shape) for k, v in hf_model.state_dict().items() if k != "lm_head.weight"}
    ours = {k: tuple(v.shape) for k, v in load_file(str(tmp_path / ck.SAFETENSORS)).items()}
    assert ours == want
    config = json.loads((tmp_path / ck.CONFIG).read_text())
    hf_written = json.loads(hf_model.config.to_json_string())
    assert config["model_type"] == "gpt2" and set(hf_written) - {"transformers_version"} <= set(
        config) | {"_name_or_path"}
    reloaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        theirs = reloaded.double()(IDX).logits
        mine = load_gpt2(tmp_path).double()(IDX)[0]
    assert float((theirs - mine).abs().max()) < 1e-10


def test_layouts_hold_the_same_weights_and_buffers_are_masks():
    shape = checks.TINY
    bare = ck.random_state_dict(shape, seed=9, prefix=False)
    full = ck.random_state_dict(shape, seed=9, prefix=True, buffers=True, lm_head=True)
    for k, v in bare.items():
        assert torch.equal(full[f"transformer.{k}"], v)
    assert full["lm_head.weight"] is full["transformer.wte.weight"]
    assert torch.equal(full["transformer.h.1.attn.bias"], torch.ones(1, 1, 24, 24).tril())
    assert torch.equal(bare["ln_f.weight"], ck.relayout(full, shape)["transformer.ln_f.weight"])
    assert abs(float(bare["ln_f.weight"].mean()) - 1) < 0.05  # gains around 1, every layout


def test_124m_layout_has_124m_parameters():
    n = sum(torch.Size(s).numel() for _, s in ck.hf_shapes(ck.GPT2_SMALL))
    assert n == checks.GPT2_124M_PARAMETERS


# ------------------------------------------------------------ finding the real weights


def _fake_hub(root: Path, source: Path, repo: str = "models--gpt2") -> Path:
    """A Hugging Face cache layout: blobs, a snapshot of symlinks, refs/main."""
    base = root / "hub" / repo
    (base / "blobs").mkdir(parents=True)
    snap = base / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for name in (ck.SAFETENSORS, ck.CONFIG):
        blob = base / "blobs" / f"blob-{name}"
        shutil.copyfile(source / name, blob)
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text("abc123")
    return snap


def test_find_real_gpt2_env_cache_and_nothing(tmp_path):
    src = ck.write_checkpoint(tmp_path / "src", checks.TINY, 0)
    assert ck.find_real_gpt2(src, {})[0] == src
    path, why = ck.find_real_gpt2(tmp_path / "nope", {})
    assert path is None and "--gpt2-weights" in why
    snap = _fake_hub(tmp_path / "hf", src, "models--openai-community--gpt2")
    assert ck.find_real_gpt2(None, {"HF_HOME": str(tmp_path / "hf")})[0] == snap
    assert ck.find_real_gpt2(None, {"HF_HUB_CACHE": str(tmp_path / "hf" / "hub")})[0] == snap
    path, why = ck.find_real_gpt2(None, {"HF_HOME": str(tmp_path / "empty")})
    assert path is None and "nothing is downloaded" in why


# ------------------------------------------------------------ grading


@pytest.fixture(scope="module")
def real_like(transformers, tmp_path_factory):
    """A stand-in for the real gpt2 folder written by transformers: GPT-2's vocabulary (the
    fixed prompt's token ids exist), small elsewhere; the real file's layout (no prefix)."""
    folder = tmp_path_factory.mktemp("gpt2-like")
    _hf_model(transformers, "GPT2Model", vocab=50257, n_pos=64, n_layer=2, n_head=4, n_embd=32,
              seed=11).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def recorded(real_like, tmp_path_factory):
    """The correct example graded live with every check (the real-weights one on a stand-in
    found in a Hugging Face cache), recording the expected values as a release would."""
    tmp = tmp_path_factory.mktemp("recorded")
    _fake_hub(tmp / "hf", real_like)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_HUB_CACHE", raising=False)
        mp.setenv("HF_HOME", str(tmp / "hf"))
        live = LiveReference(record=True)
        result = grade_folder(CORRECT, A, source=live)
    live.save(tmp / "fixtures")
    return result, tmp / "fixtures"


def test_correct_example_passes_every_check_with_real_weights_from_a_hf_cache(recorded):
    result = recorded[0]
    a = result.assignment("gpt2_loading")
    bad = [(c.id, c.status, c.message) for c in a.checks if c.status is not Status.PASSED]
    assert not bad
    assert a.score == a.max_score == ASSIGNMENTS["gpt2_loading"].max_score
    details = a.check("gpt2_124m").details
    assert details["reported_num_parameters"] == 124_439_808 and details["max_abs_diff"] < 1e-5
    assert "Hugging Face cache" in a.check("real_gpt2").details["weights"]
    assert a.check("logits").details["max_abs_diff"] < 1e-12


def test_other_style_passes_and_real_check_is_skipped_without_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    folder = plant(tmp_path, {})
    shutil.copyfile(OTHER_STYLE, folder / "gpt2_loading.py")
    result = grade_folder(folder, A, include_hidden=False)
    statuses = {c.id: c.status for _, c in result.all_checks()}
    assert statuses.pop("real_gpt2") is Status.SKIPPED
    assert statuses.pop("gpt2_124m") is Status.SKIPPED  # hidden: not run here
    assert set(statuses.values()) == {Status.PASSED}
    skipped = result.assignment("gpt2_loading").check("real_gpt2")
    assert "--gpt2-weights" in skipped.message and skipped.max_score == 3
    assert result.assignment("gpt2_loading").max_score == ASSIGNMENTS["gpt2_loading"].max_score - 6


CPROJ = ('_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", '
         '"mlp.c_proj.weight")')
# bug id -> (edits of gpt2_loading.py, exactly the public checks that must fail)
BUGS = {
    "c_proj_not_transposed": (
        [(CPROJ, '_CONV1D = ("attn.c_attn.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")')],
        {"logits", "buffers_ignored", "unprefixed_names", "state_dict"},
    ),
    "buffers_kept": (
        [('_BUFFERS = (".attn.bias", ".attn.masked_bias")', '_BUFFERS = (".attn.masked_bias",)')],
        {"buffers_ignored"},
    ),
    "tie_broken": (
        [("    return model.eval()\n",
          "    model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.clone())\n"
          "    return model.eval()\n")],
        {"weight_tying"},
    ),
    "missing_weights_unchecked": (
        [("missing = [k for k in wanted if k not in weights]", "missing = []")],
        {"not_gpt2"},
    ),
    "prefix_assumed": (
        [('key = name.removeprefix("transformer.")', 'key = name[len("transformer."):]')],
        {"unprefixed_names", "state_dict"},
    ),
    "block_size_hardcoded": (
        [('block_size=hf_config["n_positions"]', "block_size=1024")],
        {"logits", "buffers_ignored", "unprefixed_names", "weight_tying"},
    ),
}
# Graded with the hidden 124M check too (one 124M grading per bug costs ~10 s).
HIDDEN_FAILS = {"tie_broken": {"gpt2_124m"}}


# c_proj_not_transposed is graded below, with real weights.
@pytest.mark.parametrize("bug", sorted(set(BUGS) - {"c_proj_not_transposed"}))
def test_planted_bug_fails_exactly_its_checks(bug, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    edits, expected = BUGS[bug]
    hidden = bug in HIDDEN_FAILS
    result = grade_folder(plant(tmp_path, {"gpt2_loading": edits}), A, include_hidden=hidden)
    want = expected | HIDDEN_FAILS.get(bug, set())
    assert failing(result) == {f"gpt2_loading.{c}" for c in want}
    for _, c in result.all_checks():
        if c.status not in (Status.PASSED, Status.SKIPPED):
            assert c.score == 0 and c.message and "internal grader error" not in c.message


def test_missing_c_proj_transpose_is_named_and_fails_on_real_weights(real_like, tmp_path,
                                                                      monkeypatch):
    edits, expected = BUGS["c_proj_not_transposed"]
    result = grade_folder(plant(tmp_path, {"gpt2_loading": edits}), A, include_hidden=False,
                          checks=CheckSettings(gpt2_weights=real_like))
    assert failing(result) == {f"gpt2_loading.{c}" for c in expected | {"real_gpt2"}}
    message = result.assignment("gpt2_loading").check("logits").message
    assert "attn.c_proj.weight` holds the checkpoint's matrix without the transpose" in message


def test_every_check_is_aimed_at_by_a_planted_bug():
    aimed = {f"gpt2_loading.{c}" for _, exp in BUGS.values() for c in exp}
    aimed |= {f"gpt2_loading.{c}" for exp in HIDDEN_FAILS.values() for c in exp}
    aimed.add("gpt2_loading.real_gpt2")  # test_missing_c_proj_transpose_..._on_real_weights
    assert aimed == ALL


def test_fixtures_recorded_on_the_correct_example_give_the_live_verdicts(recorded, tmp_path,
                                                                         monkeypatch):
    """A student bundle: the checkpoints are rebuilt by the grader from their seeds (tiny ones
    from the stored weights), the expected values come from fixtures, no reference package."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "reference", None)
    stored = StoredFixtures(recorded[1])
    folder = EXAMPLES / "buggy-gpt2-cproj"
    result = grade_folder(folder, A, source=stored, include_hidden=False)
    spec = yaml.safe_load((folder / "expected.yaml").read_text())
    assert failing(result) == set(spec["fails"]) - {"gpt2_loading.gpt2_124m"}
    assert "without the transpose" in result.assignment("gpt2_loading").check("logits").message


EXAMPLE_BUGS = {"buggy-gpt2-cproj": "c_proj_not_transposed", "buggy-gpt2-untied": "tie_broken"}
EXAMPLE_HIDDEN = {"buggy-gpt2-cproj": {"gpt2_124m"}, "buggy-gpt2-untied": {"gpt2_124m"}}


@pytest.mark.parametrize("name", sorted(EXAMPLE_BUGS))
def test_bundled_buggy_examples_are_the_correct_one_plus_their_bug(name, tmp_path):
    folder = EXAMPLES / name
    edits, expected = BUGS[EXAMPLE_BUGS[name]]
    planted = plant(tmp_path, {"gpt2_loading": edits})
    for path in folder.glob("*.py"):
        assert path.read_text() == (planted / path.name).read_text(), path.name
    spec = yaml.safe_load((folder / "expected.yaml").read_text())
    assert set(spec["fails"]) == {f"gpt2_loading.{c}" for c in expected | EXAMPLE_HIDDEN[name]}


def test_stub_has_the_reference_api(monkeypatch):
    import importlib.util
    import inspect

    import reference.gpt2_loading as ref

    root = CORRECT.parent.parent / "assignments"
    for name in ("attention", "causal_mask", "block", "gpt2_loading"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(root))
    spec = importlib.util.spec_from_file_location("gpt2_loading", root / "gpt2_loading.py")
    stub = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpt2_loading", stub)
    spec.loader.exec_module(stub)
    for name in ("config_from_hf", "load_gpt2"):
        assert inspect.getdoc(getattr(stub, name)) == inspect.getdoc(getattr(ref, name))
        def params(fn):
            return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]

        assert params(getattr(stub, name)) == params(getattr(ref, name))
    with pytest.raises(NotImplementedError):
        stub.load_gpt2({})



MISSING_CHECK = '''    missing = [k for k in wanted if k not in weights]
    if missing:
        raise ValueError(f"not a GPT-2 checkpoint for this config: {len(missing)} weight(s) "
                         f"missing, the first is {missing[0]!r}")
'''
UNEXPECTED_CHECK = '''    unexpected = sorted(set(weights) - set(wanted))
    if unexpected:
        raise ValueError(f"not a GPT-2 checkpoint for this config: unexpected weight "
                         f"{unexpected[0]!r} (and {len(unexpected) - 1} more)")
'''


def test_a_loader_that_checks_unexpected_weights_first_passes_not_gpt2(tmp_path, monkeypatch):
    """Issue 16: the stub allows the first weight that is missing, unexpected or of the wrong
    shape; a loader that looks for unexpected weights first is correct."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    folder = plant(tmp_path, {"gpt2_loading": [(MISSING_CHECK + UNEXPECTED_CHECK,
                                                UNEXPECTED_CHECK + MISSING_CHECK)]})
    result = grade_folder(folder, A, include_hidden=False)
    c = result.assignment("gpt2_loading").check("not_gpt2")
    assert c.status is Status.PASSED, c.message


def test_a_message_naming_a_weight_that_is_there_fails_not_gpt2(tmp_path, monkeypatch):
    """A message listing every GPT-2 name (whatever is wrong) does not name the problem."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    folder = plant(tmp_path, {"gpt2_loading": [(
        'missing, the first is {missing[0]!r}")',
        'missing: {sorted(wanted)}")')]})
    result = grade_folder(folder, A, include_hidden=False)
    c = result.assignment("gpt2_loading").check("not_gpt2")
    assert c.status is Status.FAILED and "which is in the checkpoint" in c.message, c.message


def test_a_loader_that_changes_eps_is_told_so_not_blamed_on_block(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    folder = plant(tmp_path, {"gpt2_loading": [(
        "    return model.eval()\n",
        "    for m in model.modules():\n        if isinstance(m, torch.nn.LayerNorm):\n"
        "            m.eps = 1e-6\n    return model.eval()\n")]})
    result = grade_folder(folder, A, include_hidden=False)
    c = result.assignment("gpt2_loading").check("logits")
    assert c.status is Status.FAILED
    assert "loader_changes_ln_eps" in c.details["likely_mistake"]["id"]
    assert "comes from your GPT's forward pass" not in c.message + c.hint


def test_checkpoint_store_is_per_grading_state_and_crosses_processes(tmp_path):
    """Built once per store (no module global), shared with a judging process by pickling,
    removed by its owner only; a given root is kept."""
    import pickle

    shape = ck.HFShape(n_positions=8, vocab_size=11, n_layer=1, n_head=2, n_embd=4)
    store = ck.CheckpointStore()
    folder = store.checkpoint(shape, seed=1)
    copy = pickle.loads(pickle.dumps(store))
    assert copy.checkpoint(shape, seed=1) == folder
    del copy
    assert folder.is_dir()
    store.close()
    assert not folder.exists()
    with ck.CheckpointStore(tmp_path / "kept") as kept:
        built = kept.checkpoint(shape, seed=1)
    assert (built / ck.SAFETENSORS).is_file()


def test_kept_store_rebuilds_a_cut_file_and_gives_way_when_it_cannot_write(tmp_path):
    """A kept checkpoint folder is reused only when its file is whole; a root that cannot be
    written (here: a file where the folder should be) falls back to a private folder."""
    shape = ck.HFShape(n_positions=8, vocab_size=11, n_layer=1, n_head=2, n_embd=4)
    built = ck.CheckpointStore(tmp_path / "kept").checkpoint(shape, seed=1)
    whole = (built / ck.SAFETENSORS).read_bytes()
    (built / ck.SAFETENSORS).write_bytes(whole[:-4])  # a writer killed before the end
    again = ck.CheckpointStore(tmp_path / "kept").checkpoint(shape, seed=1)
    assert again == built and (built / ck.SAFETENSORS).read_bytes() == whole

    (tmp_path / "blocked").write_text("not a folder")
    with pytest.raises(OSError):
        ck.CheckpointStore(tmp_path / "blocked").checkpoint(shape, seed=1)
    with ck.CheckpointStore(tmp_path / "blocked", fallback=True) as store:
        folder = store.checkpoint(shape, seed=1)
        assert (folder / ck.SAFETENSORS).read_bytes() == whole
        assert tmp_path not in folder.parents


def test_a_failed_build_leaves_no_half_file_and_a_strict_umask_no_unreadable_store(tmp_path):
    """A build that fails midway removes its temporary file (workers are lent the store), and a
    kept store built under umask 077 is still readable by the judge and workers it is lent to
    (folders 0755, files 0644)."""
    shape = ck.HFShape(n_positions=8, vocab_size=11, n_layer=1, n_head=2, n_embd=4)
    folder = tmp_path / "failed"
    folder.mkdir()
    names = [("a", (2,)), ("b", (3,))]
    with pytest.raises(ValueError):
        ck.write_safetensors(folder / ck.SAFETENSORS, names,
                             [("a", torch.zeros(2)), ("b", torch.zeros(4))])  # b: wrong shape
    assert list(folder.iterdir()) == []

    old = os.umask(0o077)
    try:
        built = ck.CheckpointStore(tmp_path / "strict").checkpoint(shape, seed=1)
    finally:
        os.umask(old)
    for d in (tmp_path / "strict", built):
        assert d.stat().st_mode & 0o777 == 0o755, d
    for f in built.iterdir():
        assert f.stat().st_mode & 0o444 == 0o444, f
    assert not [f for f in built.iterdir() if f.name.endswith(".part")]


def test_user_cache_dir_follows_xdg(tmp_path):
    got = ck.user_cache_dir({"XDG_CACHE_HOME": str(tmp_path)})
    assert got == tmp_path / "grader" / "checkpoints"
    assert ck.user_cache_dir({}) == Path("~/.cache/grader/checkpoints").expanduser()


def test_random_checkpoint_weights_have_the_asked_spread_and_are_seeded():
    shape = ck.HFShape(n_positions=64, vocab_size=500, n_layer=1, n_head=2, n_embd=64)
    a = ck.random_state_dict(shape, seed=3, std=0.02)
    b = ck.random_state_dict(shape, seed=3, std=0.02)
    c = ck.random_state_dict(shape, seed=4, std=0.02)
    wte = a["transformer.wte.weight"]
    assert torch.equal(wte, b["transformer.wte.weight"])
    assert not torch.equal(wte, c["transformer.wte.weight"])
    assert abs(float(wte.std()) - 0.02) < 1e-3 and abs(float(wte.mean())) < 1e-3
    assert abs(float(a["transformer.h.0.ln_1.weight"].mean()) - 1.0) < 0.01


def test_124m_check_fails_a_loader_that_leaves_a_weight_behind(tmp_path, monkeypatch):
    """The worker runs the 124M load with random initialisation off: a weight the loader
    does not copy is then empty rather than random, and the check still fails."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    folder = plant(tmp_path, {"gpt2_loading": [
        ("            target.copy_(w)",
         "            if not key.endswith('mlp.c_fc.weight'):\n"
         "                target.copy_(w)")]})
    result = grade_folder(folder, A, include_hidden=True)
    c = result.assignment("gpt2_loading").check("gpt2_124m")
    assert c.status is Status.FAILED, c.message
    assert "logits" in c.message
