"""The moving average of the weights (codectrace.weight_averaging) on its own; its place in training is tested in
test_train.py."""

import pytest
import torch

from codectrace.weight_averaging import WeightAveraging, warmed_up_decay


def layer_with(value: float) -> torch.nn.Linear:
    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.fill_(value)
    return layer


def set_weights(layer: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.fill_(value)


def test_the_first_updates_follow_the_weights_and_later_ones_use_the_asked_decay():
    assert warmed_up_decay(0.998, 0) == pytest.approx(0.1)
    assert warmed_up_decay(0.998, 10) == pytest.approx(11 / 20)
    assert warmed_up_decay(0.998, 100_000) == 0.998


def test_an_update_moves_the_average_toward_the_weights_by_one_minus_the_decay():
    layer, averaging = layer_with(0.0), WeightAveraging(0.9)
    averaging.start(layer)
    averaging.updates = 1000  # past the warm-up
    set_weights(layer, 1.0)
    averaging.update(layer)
    assert all(torch.allclose(value, torch.full_like(value, 0.1)) for value in averaging.average.values())


def test_the_average_is_in_the_model_inside_the_block_and_its_own_weights_come_back_exactly():
    layer, averaging = layer_with(0.0), WeightAveraging(0.5)
    averaging.start(layer)
    set_weights(layer, 1.0)
    averaging.update(layer)
    own = {name: p.detach().clone() for name, p in layer.named_parameters()}
    with averaging.averaged_weights(layer):
        assert all(torch.equal(p, averaging.average[name]) for name, p in layer.named_parameters())
        assert not torch.equal(layer.weight, own["weight"])
    assert all(torch.equal(p, own[name]) for name, p in layer.named_parameters())


def test_outside_training_the_block_leaves_the_model_as_it_is():
    layer, averaging = layer_with(1.0), WeightAveraging(0.5)
    with averaging.averaged_weights(layer):  # never started
        assert torch.equal(layer.weight, torch.ones_like(layer.weight))
    averaging.start(layer)
    averaging.training = False  # training over: the model holds its final weights
    set_weights(layer, 2.0)
    with averaging.averaged_weights(layer):
        assert torch.equal(layer.weight, torch.full_like(layer.weight, 2.0))


def test_optimizer_state_stays_attached_to_the_same_tensors():
    layer, averaging = layer_with(0.0), WeightAveraging(0.5)
    averaging.start(layer)
    before = [id(p) for p in layer.parameters()]
    with averaging.averaged_weights(layer):
        assert [id(p) for p in layer.parameters()] == before


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_a_decay_outside_zero_to_one_is_refused_with_what_is_accepted(decay):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        WeightAveraging(decay)
