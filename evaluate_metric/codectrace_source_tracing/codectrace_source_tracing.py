"""`evaluate` metric for codec-based deepfake source tracing (CodecTrace / CodecFake+).

    import evaluate
    metric = evaluate.load("evaluate_metric/codectrace_source_tracing", "bin")   # or "vq", "aux", "dec"
    metric.compute(predictions=logits, references=labels)

Predictions are per-clip logits (or probabilities) over the task's labels in the official index order;
references are label indices (-100 rows are ignored). BIN returns the EER (DET-curve method, bona fide
positive, score P(bonafide)), its threshold, ROC-AUC and accuracy; VQ / AUX / DEC return accuracy, weighted
F1, macro F1 and the confusion matrix. The numbers are those of `codectrace.metrics`.
"""

import datasets
import evaluate
import numpy

from codectrace.metrics import task_metrics
from modeling_codectrace.configuration_codectrace import TASK_LABELS

_CITATION = """\
@inproceedings{chen2025codec,
  title={Codec-Based Deepfake Source Tracing via Neural Audio Codec Taxonomy},
  author={Chen, Xuanjun and Lin, I-Ming and Zhang, Lin and Du, Jiawei and Wu, Haibin and Lee, Hung-yi and
          Jang, Jyh-Shing Roger},
  booktitle={Proc. Interspeech},
  year={2025}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): logits or probabilities, one row per clip, one column per label.
    references (`list[int]`): label indices; -100 ignores a row.
Returns:
    bin: `eer`, `eer_threshold`, `roc_auc`, `accuracy`, `f1_weighted`, `f1_macro`, `confusion_matrix`, `count`.
    vq / aux / dec: `accuracy`, `f1_weighted`, `f1_macro`, `confusion_matrix`, `count`.
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class CodectraceSourceTracing(evaluate.Metric):
    def _info(self):
        if self.config_name not in TASK_LABELS:
            raise ValueError(
                f"config name must be one of {list(TASK_LABELS)} (the task), got {self.config_name!r}."
            )
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        logits = numpy.asarray(predictions, dtype=numpy.float64)
        expected = len(TASK_LABELS[self.config_name])
        if logits.ndim != 2 or logits.shape[1] != expected:
            raise ValueError(f"{self.config_name} predictions need {expected} columns, got shape {logits.shape}.")
        return task_metrics(self.config_name, logits, numpy.asarray(references))
