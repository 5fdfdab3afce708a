"""Class compactness (codectrace.class_compactness): Fisher's within-class over total scatter per taxonomy head."""

import pytest
import torch

from codectrace.class_compactness import class_compactness_loss, within_class_scatter_ratio


def test_the_ratio_matches_a_hand_computation():
    embedding = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 4.0]])
    labels = torch.tensor([1, 1, 2, 2])
    # class means (1, 0) and (10, 2): within 1 + 1 + 4 + 4 = 10; overall mean (5.5, 1): total 30.25 + 1 + 12.25 + 1
    # + 20.25 + 1 + 20.25 + 9 = 95
    assert within_class_scatter_ratio(embedding, labels).item() == pytest.approx(10 / 95)


def test_the_ratio_is_zero_when_each_class_is_one_point_and_one_when_the_classes_share_a_centre():
    apart = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 1.0], [3.0, 1.0]])
    assert within_class_scatter_ratio(apart, torch.tensor([1, 1, 2, 2])).item() == pytest.approx(0.0)
    same_centre = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, -2.0], [0.0, 2.0]])
    assert within_class_scatter_ratio(same_centre, torch.tensor([1, 1, 2, 2])).item() == pytest.approx(1.0)


def test_scaling_the_embedding_leaves_the_ratio_unchanged():
    embedding, labels = torch.randn(12, 5, generator=torch.Generator().manual_seed(0)), torch.arange(12) % 3
    ratio = within_class_scatter_ratio(embedding, labels)
    assert within_class_scatter_ratio(embedding * 7.5, labels).item() == pytest.approx(ratio.item(), rel=1e-5)


def test_rows_labelled_minus_100_are_left_out():
    embedding = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 4.0], [500.0, -300.0]])
    assert within_class_scatter_ratio(embedding, torch.tensor([1, 1, 2, 2, -100])).item() == pytest.approx(10 / 95)


@pytest.mark.parametrize("embedding, labels", [(torch.ones(3, 4), torch.tensor([0, 1, 1])),
                                               (torch.randn(3, 4), torch.tensor([0, -100, -100]))])
def test_identical_or_too_few_rows_give_zero_with_a_gradient_and_no_nan(embedding, labels):
    embedding.requires_grad_(True)
    ratio = within_class_scatter_ratio(embedding, labels)
    ratio.backward()
    assert ratio.item() == 0.0 and torch.isfinite(embedding.grad).all()


def test_the_gradient_pulls_each_row_towards_its_class_centre():
    embedding = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 4.0]], requires_grad=True)
    within_class_scatter_ratio(embedding, torch.tensor([1, 1, 2, 2])).backward()
    stepped = embedding.detach() - 10.0 * embedding.grad
    assert within_class_scatter_ratio(stepped, torch.tensor([1, 1, 2, 2])) < 10 / 95


def test_the_loss_is_the_mean_over_the_taxonomy_heads_given_and_ignores_bin():
    generator = torch.Generator().manual_seed(1)
    embeddings = {task: torch.randn(8, 4, generator=generator) for task in ("bin", "vq", "aux", "dec")}
    labels = {"bin": torch.arange(8) % 2, "vq": torch.arange(8) % 4, "aux": torch.arange(8) % 3, "dec": None}
    expected = (within_class_scatter_ratio(embeddings["vq"], labels["vq"])
                + within_class_scatter_ratio(embeddings["aux"], labels["aux"])) / 2
    assert class_compactness_loss(embeddings, labels).item() == pytest.approx(expected.item())


def test_a_model_without_a_labelled_taxonomy_head_is_refused_with_what_it_has():
    with pytest.raises(ValueError, match=r"at least one of the heads .* got embeddings \['bin'\] and labels \['bin'\]"):
        class_compactness_loss({"bin": torch.randn(4, 3)}, {"bin": torch.tensor([0, 1, 0, 1]), "vq": None})
