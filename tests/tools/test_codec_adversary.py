"""The conditional codec adversary (codectrace.codec_adversary): its codec vocabulary, the reversed gradient, the
within-class loss, and gradient averaging across processes."""

import math
import os
from datetime import timedelta

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from datasets import Dataset

from codectrace.codec_adversary import (
    CodecVocabulary,
    ConditionalCodecAdversary,
    average_gradients_across_processes,
    ramped_strength,
)
from codectrace.testing import free_port

SPOOF, BONA_FIDE = 0, 1


def rows(sources, vq, aux, dec, bins=None):
    bins = bins or [BONA_FIDE if source == "bonafide" else SPOOF for source in sources]
    return Dataset.from_dict({"source": sources, "bin": bins, "vq": vq, "aux": aux, "dec": dec})


@pytest.fixture
def vocabulary():
    # c_rvq and d_rvq share every class but AUX; s_svq is alone in its VQ class
    return CodecVocabulary.from_rows(rows(
        ["d_rvq", "bonafide", "c_rvq", "s_svq", "c_rvq"], vq=[1, 0, 1, 2, 1], aux=[1, 0, 2, 2, 2], dec=[1, 0, 1, 1, 1]))


def test_the_vocabulary_holds_each_spoofed_codec_once_in_sorted_order_with_its_classes(vocabulary):
    assert vocabulary.codecs == ("c_rvq", "d_rvq", "s_svq")
    assert vocabulary.classes == {"vq": (1, 1, 2), "aux": (2, 1, 2), "dec": (1, 1, 1)}


def test_source_labels_index_codecs_and_ignore_bona_fide_rows_and_unknown_codecs(vocabulary):
    labels = vocabulary.source_labels(["s_svq", "bonafide", "new_codec", "c_rvq"], [SPOOF, BONA_FIDE, SPOOF, SPOOF])
    assert labels == [2, -100, -100, 0]


def test_a_codec_with_two_classes_of_a_task_is_refused():
    with pytest.raises(ValueError, match="codec 'x' has two taxonomy labels"):
        CodecVocabulary.from_rows(rows(["x", "x"], vq=[1, 2], aux=[1, 1], dec=[1, 1]))


def test_rows_without_a_spoofed_codec_are_refused():
    with pytest.raises(ValueError, match="no spoofed codec"):
        CodecVocabulary.from_rows(rows(["bonafide"], vq=[0], aux=[0], dec=[0]))


def test_the_strength_ramps_from_zero_to_the_weight_over_training():
    assert ramped_strength(0.5, 0.0) == 0.0
    assert ramped_strength(0.5, 0.1) == pytest.approx(0.5 * (2 / (1 + math.exp(-1)) - 1))
    assert ramped_strength(0.5, 1.0) == pytest.approx(0.5, abs=1e-4)
    assert ramped_strength(0.5, 2.0) == ramped_strength(0.5, 1.0)  # progress past the end is the end


def test_the_loss_names_a_codec_only_among_the_codecs_of_its_class(vocabulary):
    torch.manual_seed(0)
    adversary = ConditionalCodecAdversary(vocabulary, {"vq": 6})
    embedding = torch.randn(3, 6)
    sources = torch.tensor([0, 1, 2])  # s_svq (2) is alone in its VQ class: no question to ask
    logits = adversary.classifiers["vq"](embedding)[:2, :2]  # c_rvq and d_rvq, against each other only
    expected = F.cross_entropy(logits, sources[:2])
    # strength 0: the adversary's own loss alone (the confusion term is tested below)
    assert adversary({"vq": embedding}, sources, strength=0.0).item() == pytest.approx(expected.item(), rel=1e-6)


def test_rows_without_a_question_give_a_zero_loss_that_keeps_the_graph(vocabulary):
    adversary = ConditionalCodecAdversary(vocabulary, {"vq": 4})
    embedding = torch.randn(2, 4, requires_grad=True)
    loss = adversary({"vq": embedding}, torch.tensor([2, -100]), strength=1.0)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(embedding.grad, torch.zeros(2, 4))


def test_confusion_trains_the_adversary_on_cut_embeddings_and_the_tracer_towards_a_uniform_guess(vocabulary):
    torch.manual_seed(0)
    adversary = ConditionalCodecAdversary(vocabulary, {"aux": 4})
    embedding = torch.randn(3, 4, requires_grad=True)
    sources = torch.tensor([0, 2, 1])  # c_rvq and s_svq share AUX class 2; d_rvq is alone in class 1
    adversary({"aux": embedding}, sources, strength=0.5).backward()
    classifier = adversary.classifiers["aux"]
    same = torch.tensor([True, False, True])
    rows = embedding.detach()[:2].clone().requires_grad_()
    log_guess = torch.log_softmax(classifier(rows)[:, same], dim=-1)
    codec_loss = F.cross_entropy(log_guess, torch.tensor([0, 1]))
    kl_from_uniform = (-log_guess.mean(-1) - math.log(2)).mean()
    adversary_gradient = torch.autograd.grad(codec_loss, classifier[2].weight, retain_graph=True)[0]
    assert torch.allclose(classifier[2].weight.grad, adversary_gradient, atol=1e-6)  # the codec loss alone
    (0.5 * kl_from_uniform).backward()
    assert torch.allclose(embedding.grad[:2], rows.grad, atol=1e-6)  # the confusion term alone
    assert torch.equal(embedding.grad[2], torch.zeros(4))  # a codec alone in its class: no question


def test_confusion_is_zero_with_a_zero_gradient_once_the_adversary_guesses_uniformly(vocabulary):
    adversary = ConditionalCodecAdversary(vocabulary, {"vq": 4})
    with torch.no_grad():
        adversary.classifiers["vq"][2].weight.zero_()
        adversary.classifiers["vq"][2].bias.zero_()
    embedding = torch.randn(2, 4, requires_grad=True)
    loss = adversary({"vq": embedding}, torch.tensor([0, 1]), strength=1.0)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)  # the adversary's own loss, at chance
    assert torch.allclose(embedding.grad, torch.zeros(2, 4), atol=1e-7)


def test_a_model_without_taxonomy_heads_is_refused(vocabulary):
    with pytest.raises(ValueError, match="needs at least one of the heads"):
        ConditionalCodecAdversary(vocabulary, {"bin": 8})


def test_gradient_averaging_is_a_no_op_in_one_process():
    layer = torch.nn.Linear(2, 1)
    layer(torch.ones(1, 2)).sum().backward()
    before = layer.weight.grad.clone()
    average_gradients_across_processes(layer)
    assert torch.equal(layer.weight.grad, before)


def _average_in_process(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        layer = torch.nn.Linear(1, 1, bias=False)
        layer.weight.grad = torch.full((1, 1), float(rank * 4 + 2))  # 2 on one process, 6 on the other
        average_gradients_across_processes(layer)
        results[rank] = layer.weight.grad.item()
    finally:
        torch.distributed.destroy_process_group()


def test_gradients_are_averaged_across_the_processes_of_a_distributed_run():
    port = free_port()
    results = mp.Manager().dict()
    mp.spawn(_average_in_process, args=(port, results), nprocs=2)
    assert dict(results) == {0: 4.0, 1: 4.0}


def _average_with_a_gradient_on_one_process(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    try:
        # One parameter got a gradient on process 0 only (its batch had no spoofed rows of that class on 1); the
        # other got none anywhere. Without the same collective calls on both, the collective would time out.
        first, second = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
        if rank == 0:
            first.weight.grad = torch.full((1, 1), 6.0)
        average_gradients_across_processes(torch.nn.ModuleList([first, second]))
        results[rank] = (first.weight.grad.item(), second.weight.grad)
    finally:
        torch.distributed.destroy_process_group()


def test_a_gradient_present_on_one_process_only_is_averaged_with_zero_and_does_not_hang():
    results = mp.Manager().dict()
    mp.spawn(_average_with_a_gradient_on_one_process, args=(free_port(), results), nprocs=2, join=True)
    assert dict(results) == {0: (3.0, None), 1: (3.0, None)}
