"""Loss weights that make rank / micro-batch partial losses add up to the whole-batch loss."""

import pytest
import torch

from speciarl.policy.microbatch import token_budget_chunks
from speciarl.rl.losses import aggregate_loss
from speciarl.rl.partial_losses import aggregation_units, is_additive, partial_loss_weight


def test_units_are_tokens_for_token_mean_and_rows_for_sequence_means():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    assert float(aggregation_units(mask, "token_mean")) == 3.0
    assert float(aggregation_units(mask, "seq_mean_token_mean")) == 2.0
    assert float(aggregation_units(mask, "seq_mean_token_sum_norm")) == 2.0
    # a sum over rows: the count only tells an empty part from a full one
    assert float(aggregation_units(mask, "token_sum_over_max_length")) == 2.0
    assert is_additive("token_sum_over_max_length") and not is_additive("seq_mean_token_sum_norm")
    with pytest.raises(ValueError, match="not a registered loss aggregation"):
        aggregation_units(mask, "sum_of_everything")


def test_weight_formula_by_hand():
    # rank 0 holds 3 of the batch's 8 tokens, 2 ranks: 2 * 3 / 8 = 0.75
    assert partial_loss_weight(3, 8, 2) == pytest.approx(0.75)
    assert partial_loss_weight(0, 8, 2) == 0.0
    assert partial_loss_weight(0, 0, 2) == 0.0
    # an additive aggregation: every part weighs W whatever its share
    assert partial_loss_weight(3, 8, 2, additive=True) == 2.0
    assert partial_loss_weight(3, 0, 2, additive=True) == 0.0


@pytest.mark.parametrize(
    "mode", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm", "token_sum_over_max_length"]
)
def test_weighted_rank_losses_average_to_the_whole_batch_loss(mode):
    """Two ranks with unequal token counts: mean over ranks of (weight x local loss) = global loss.

    Whole batch (token_mean): per-token losses 1, 2 | 3 | 4, 5, 6 over 6 tokens -> 21 / 6 = 3.5.
    Rank 0 holds rows 0-1 (3 tokens, local mean 2), rank 1 row 2 (3 tokens, local mean 5):
    weights 2*3/6 = 1 each, DDP averages (1*2 + 1*5) / 2 = 3.5. A plain mean of local means
    would also give 3.5 here, so rank 1 gets a 4th row of 1 token (loss 10): whole batch
    31 / 7; rank 1's local mean 25 / 4 with weight 2*4/7; rank 0's 2 with weight 2*3/7;
    average (6/7 * 2 + 8/7 * 25/4) / 2 = (12/7 + 50/7) / 2 = 31/7.
    """
    loss = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [4.0, 5.0, 6.0], [10.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    whole = aggregate_loss(loss, mask, mode, max_length=3)
    if mode == "token_mean":
        assert float(whole) == pytest.approx(31 / 7)
    if mode == "token_sum_over_max_length":
        # 31 / 3; rank 0's part 6 / 3, rank 1's 25 / 3, each weighted 2: (4 + 50/3) / 2 = 31 / 3.
        assert float(whole) == pytest.approx(31 / 3)
    ranks = [slice(0, 2), slice(2, 4)]
    total_units = float(aggregation_units(mask, mode))
    averaged = sum(
        partial_loss_weight(float(aggregation_units(mask[r], mode)), total_units, 2, is_additive(mode))
        * aggregate_loss(loss[r], mask[r], mode, max_length=3)
        for r in ranks
    ) / len(ranks)
    assert float(averaged) == pytest.approx(float(whole))


def test_token_budget_chunks_by_hand():
    # padded cost of a chunk = rows x longest row; budget 10
    # [4, 4] -> 8 ok; adding 3 -> 3 x 4 = 12 > 10: new chunk; [3, 5] -> 10 ok; [9] alone; [20] alone
    assert token_budget_chunks([4, 4, 3, 5, 9, 20], 10) == [[0, 1], [2, 3], [4], [5]]
    assert token_budget_chunks([4, 4, 3], None) == [[0, 1, 2]]
    assert token_budget_chunks([], 10) == []
