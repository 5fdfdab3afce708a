"""Score files in the official layout: what `write_score_files` writes, `read_score_files` reads back."""

import numpy as np
import pytest

from codectrace.evaluation import read_score_files, write_score_files
from codectrace.metrics import softmax


def test_score_files_read_back_as_the_probabilities_written_in_label_order(tmp_path):
    logits = {"bin": np.array([[2.0, -1.0], [-3.0, 0.5]]),
              "vq": np.array([[0.1, 2.0, -1.0, 0.0], [1.0, 0.0, 0.0, 3.0]])}
    write_score_files(tmp_path, ["u0", "u1"], logits)
    ids, probabilities = read_score_files(tmp_path, ("bin", "vq"))
    assert ids == ["u0", "u1"]
    for task in logits:  # BIN's file holds P(bona fide) alone; both columns come back in (spoof, bonafide) order
        np.testing.assert_allclose(probabilities[task], softmax(logits[task]), rtol=1e-12)


def test_reading_score_files_names_a_missing_task_file(tmp_path):
    write_score_files(tmp_path, ["u0"], {"bin": np.zeros((1, 2))})
    with pytest.raises(ValueError, match=r"scores_vq\.txt is missing"):
        read_score_files(tmp_path, ("bin", "vq"))


def test_reading_score_files_refuses_tasks_that_list_other_utterances(tmp_path):
    write_score_files(tmp_path, ["u0", "u1"], {"bin": np.zeros((2, 2)), "vq": np.zeros((2, 4))})
    vq = tmp_path / "scores_vq.txt"
    vq.write_text("".join(reversed(vq.read_text().splitlines(keepends=True))))
    with pytest.raises(ValueError, match="other utterances, or another order"):
        read_score_files(tmp_path, ("bin", "vq"))
