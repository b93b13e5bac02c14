"""Messages of the block checks that must not send a student to the wrong cause."""

from __future__ import annotations

from conftest import grade_folder, plant


def test_param_count_off_by_a_missing_layer_is_not_blamed_on_the_tie(tmp_path):
    # LayerNorms without bias: num_parameters() counts the model right, the model is short.
    sub = plant(tmp_path, {"block": [("self.ln_1 = nn.LayerNorm(n_embd)",
                                      "self.ln_1 = nn.LayerNorm(n_embd, bias=False)")]})
    check = grade_folder(sub, assignments=["block"]).assignment("block").check(
        "gpt_param_count")
    assert check.status.value == "failed"
    assert "the tied matrix" not in check.hint
    assert "counts your model correctly" in check.hint and "LayerNorm without bias" in check.hint


def test_param_count_that_counts_the_tie_twice_still_says_so(tmp_path):
    sub = plant(tmp_path, {"block": [(
        "return sum(p.numel() for p in self.parameters())",
        "return sum(p.numel() for p in self.parameters()) + self.lm_head.weight.numel()")]})
    check = grade_folder(sub, assignments=["block"]).assignment("block").check(
        "gpt_param_count")
    assert check.status.value == "failed"
    assert "counted twice" in check.message
