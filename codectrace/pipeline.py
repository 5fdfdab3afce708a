"""`codec-source-tracing` pipeline: any audio in, spoof score and per-head label distributions out.

Long audio is cut into windows of `chunk_samples` (hop configurable, default: no overlap; the last window
is aligned to the end of the clip), windows go through the model in batches, and each head's window
probabilities are averaged (the mean of probabilities). With an unknown-source scorer, a taxonomy head whose clip
is called unknown gets its probabilities from the temperature fitted on unseen codecs
(`calibration_temperatures_unknown`, when the model has one). Audio shorter than one window is repeat-padded,
as in training. 16 kHz WAV/FLAC files are read window by window, so memory does not grow with duration.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator

import numpy as np
import soundfile as sf
import torch
from transformers import Pipeline

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE, SPOOF_INDEX, TASK_LABELS
from modeling_codectrace.feature_extraction_codectrace import fit_to_length
from modeling_codectrace.modeling_codectrace import spoof_probability

from .audio import load_audio
from .calibration import unknown_rescaling
from .codec_identity import SpectrumStatistics, find_identity
from .enrolment import RAW_SPACE, Attribution, EnrolmentStore, corrected_heads, find_store
from .input_checks import UNFAMILIAR_AUDIO, AudioStats, input_warnings, refuse_too_short
from .metrics import softmax
from .precision import autocast, default_window_batch_size, input_dtype, model_for_inference, resolve_precision
from .segments import SEGMENT_HOP, WindowScores, find_segments, frame_head_scores
from .silence import checked_trim_db, file_speech_span, speech_span
from .unknown_source import UnknownSourceScorer, find_scorer, unit_rows


def window_starts(num_samples: int, chunk: int, hop: int) -> list[int]:
    """Window starts covering the whole clip; the last window ends at the clip's end (no padding)."""
    if num_samples <= chunk:
        return [0]
    starts = list(range(0, num_samples - chunk + 1, hop))
    if starts[-1] + chunk < num_samples:
        starts.append(num_samples - chunk)
    return starts


CALL_ARGUMENTS = ("hop_seconds", "window_batch_size", "return_windows", "threshold", "max_seconds", "min_seconds",
                  "sampling_rate", "return_embedding", "return_segments", "trim_silence_db")
CLIP_FAILURES = (ValueError, RuntimeError, OSError)  # what one clip's audio can raise; other clips go on
# what each batch of a clip's windows carries from preprocess to postprocess beside the model's outputs
# "decoded": the recording as preprocess decoded it whole (16 kHz mono), None where it streamed a 16 kHz file.
CLIP_KEYS = ("starts", "num_samples", "offset", "recording_samples", "audio_stats", "spectrum", "is_last", "decoded")


class _StreamingSource:
    """Reads windows of a 16 kHz file lazily (downmixing per window); everything else is decoded once. With
    `trim_db`, windows are read from the span that `codectrace.silence` keeps: sample 0 is the span's first,
    `offset` where it lies in the recording."""

    def __init__(self, inputs, sampling_rate: int | None, max_seconds: float | None, min_seconds: float | None,
                 trim_db: float | None = None):
        if isinstance(inputs, bytes):
            inputs = io.BytesIO(inputs)
        self.file = None
        if isinstance(inputs, (str, os.PathLike)) and os.path.isfile(inputs):
            with contextlib.suppress(sf.LibsndfileError, RuntimeError):
                info = sf.info(str(inputs))
                if info.samplerate == SAMPLING_RATE and info.frames > 0:
                    self.file = sf.SoundFile(str(inputs))
        if self.file is not None:
            self.num_samples = self.file.frames
            seconds = self.num_samples / SAMPLING_RATE
            if max_seconds is not None and seconds > max_seconds:
                self.file.close()
                raise ValueError(f"{inputs}: is {seconds:.1f} s long, longer than the maximum of {max_seconds:g} s.")
            if min_seconds is not None and seconds < min_seconds:
                self.file.close()
                raise ValueError(f"{inputs}: is {seconds:.3f} s long, shorter than the minimum of {min_seconds:g} s.")
            self.waveform = None
        else:
            self.waveform = load_audio(inputs, sampling_rate, max_seconds=max_seconds, min_seconds=min_seconds)
            self.num_samples = self.waveform.shape[0]
        self.recording_samples, self.offset = self.num_samples, 0
        if trim_db is not None:
            first, end = (speech_span(self.waveform, trim_db) if self.waveform is not None
                          else file_speech_span(self.file, trim_db))
            self.offset, self.num_samples = first, end - first

    def read(self, start: int, length: int) -> np.ndarray:
        length = max(min(length, self.num_samples - start), 0)
        start += self.offset
        if self.waveform is not None:
            return self.waveform[start : start + length]
        self.file.seek(start)
        block = self.file.read(length, dtype="float32", always_2d=True)
        window = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        if not np.isfinite(window).all():
            raise ValueError("audio contains NaN or Inf samples.")
        return window

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class CodecSourceTracingPipeline(Pipeline):
    """
    Source tracing of codec-based deepfakes with a CodecTrace model.

    Call arguments (also accepted at construction):
        hop_seconds (`float`, *optional*): hop between windows; default one window (no overlap), or with
            `return_segments` half a window (`segments.SEGMENT_HOP`, chosen on validation data).
        window_batch_size (`int`, *optional*): windows per forward pass; default 8 on CPU, sized to the memory of a
            GPU (`precision.default_window_batch_size`).
        return_windows (`bool`, *optional*, defaults to `False`): add per-window results.
        return_embedding (`bool`, *optional*, defaults to `False`): add `embedding`, the clip's unit-length embedding
            where enrolled generators are compared (what `codectrace enroll` stores): its codec identity
            (`codectrace.codec_identity`), or the identity head's embedding for a model without one.
        return_segments (`bool`, *optional*, defaults to `False`): add `segments`, the time ranges whose windows
            call the audio spoof (`start_seconds`, `end_seconds`, `spoof_score`, and per head `label`, `probability`,
            `known`: those of the segment's own audio traced as a clip), `contains_spoof_score` (the highest frame
            score) and `contains_spoof` (any segment): where
            in a long recording the spoofed speech is (`codectrace.segments`; docs/segments.md says which
            `hop_seconds` was chosen); with a frame head also `frame_spoof_scores` (`start_seconds` of the first
            frame, `step_seconds` between frames, `scores`: the recording's frames as the segments read them).
        threshold (`float`, *optional*, defaults to 0.5): spoof decision threshold on the spoof score.
        trim_silence_db (`float` or `False`, *optional*): cut leading and trailing stretches quieter than this many
            dB under the clip's peak before windowing (`codectrace.silence`); default the model's
            `config.trim_silence_db` (None: no trimming), `False` turns it off. Times in the result (windows,
            segments, frames) stay those of the recording; `analysed_seconds` says which part was read.
        max_seconds, min_seconds (`float`, *optional*): refuse longer / shorter audio (before trimming).
        sampling_rate (`int`, *optional*): with array inputs.

    Construction only:
        precision (`str`, *optional*, defaults to `"auto"`): `auto`, `fp32`, `bf16`, `fp16` (GPUs) or `int8` (CPU);
            `auto` is the fastest measured path of the device (`codectrace.precision.resolve_precision`).
        unknown_source (*optional*, defaults to `"auto"`): `"auto"` loads the unknown-source scorer saved beside
            the model (`unknown_source.safetensors` in the folder or Hub repo that `model.name_or_path` names, which
            `pipeline(task, model=<folder or id>)` and `from_pretrained` set); an `UnknownSourceScorer` uses that
            one; `None` or `False` turns known / unknown off.
        enrolment (*optional*, defaults to `"auto"`): `"auto"` loads the generators enrolled beside the model
            (`enrolled_generators.safetensors`, written by `codectrace enroll`); an `EnrolmentStore` uses that one;
            `None` or `False` turns attribution off.

    Returns per clip: `spoof_score` (P(spoof), averaged over windows), `decision` (`spoof` or `bonafide`),
    `num_windows`, `duration_seconds` (of the recording), `analysed_seconds` ([start, end] of the part read after
    trimming silence; the whole recording without), `warnings` (plain-language notes on short, padded, silent,
    clipped or unfamiliar audio; empty when none), one `{label: probability}` dict per head the model has, and
    `heads`: per head its `label`, `probability`, `unknown_score` and `known` (False: for a taxonomy head, not one
    of the codec families the model was trained on; for `bin`, audio unlike all the training audio, which also adds an
    "unfamiliar audio" warning; None where the model's scorer has no such head), and `generator`: the enrolled
    generator the clip is attributed to (`name`, cosine `distance`, enrolled `taxonomy`) or None; a head that calls
    the clip unknown answers with the attributed generator's enrolled class (its answer then names the generator in
    `enrolled`). Audio shorter than
    10 ms is refused. Models without a BIN head (M2) score spoofing with the authors' fusion of their taxonomy heads
    (`spoof_probability`).
    """

    # Only the feature extractor: asking for a processor or tokenizer would make transformers prompt about
    # remote code for the folder's preprocessor auto_map.
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    def __init__(self, *args, precision: str = "auto", unknown_source="auto", enrolment="auto", **kwargs):
        super().__init__(*args, **kwargs)
        revision = getattr(self.model.config, "_commit_hash", None)
        if isinstance(unknown_source, str) and unknown_source == "auto":  # the scorer saved beside the model
            unknown_source = find_scorer(self.model.name_or_path, revision)
        elif unknown_source is not None and unknown_source is not False and not isinstance(
                unknown_source, UnknownSourceScorer):
            raise ValueError(f"unknown_source must be 'auto', None, False or an UnknownSourceScorer; got "
                             f"{unknown_source!r}.")
        self.unknown_source = unknown_source or None  # an UnknownSourceScorer, or None: no known / unknown
        if isinstance(enrolment, str) and enrolment == "auto":  # the generators enrolled beside the model
            enrolment = find_store(self.model.name_or_path, revision)
        elif enrolment is not None and enrolment is not False and not isinstance(enrolment, EnrolmentStore):
            raise ValueError(f"enrolment must be 'auto', None, False or an EnrolmentStore; got {enrolment!r}.")
        self.enrolment = enrolment or None
        self.codec_identity = find_identity(self.model.name_or_path, revision)  # None: the head's embedding
        self.precision = precision
        self.resolved_precision = resolve_precision(precision, self.device)
        # A copy where the precision needs one: the caller's model object stays as it was.
        self.model = model_for_inference(self.model, self.resolved_precision, self.device)

    def _sanitize_parameters(self, hop_seconds=None, window_batch_size=None, return_windows=None, threshold=None,
                             max_seconds=None, min_seconds=None, sampling_rate=None, return_embedding=None,
                             return_segments=None, trim_silence_db=None, **kwargs):
        if kwargs:  # a misspelt argument would otherwise change nothing, silently
            raise ValueError(f"unknown argument(s) {sorted(kwargs)} for the codec-source-tracing pipeline; it takes "
                             f"{', '.join(CALL_ARGUMENTS)}.")
        preprocess = {}
        for key, value in (("hop_seconds", hop_seconds), ("window_batch_size", window_batch_size),
                           ("max_seconds", max_seconds), ("min_seconds", min_seconds),
                           ("sampling_rate", sampling_rate)):
            if value is not None:
                preprocess[key] = value
        if trim_silence_db is not None:  # False: no trimming, whatever the config says
            preprocess["trim_silence_db"] = checked_trim_db(trim_silence_db) or False
        postprocess = {}
        if return_windows is not None:
            postprocess["return_windows"] = return_windows
        if threshold is not None:
            postprocess["threshold"] = threshold
        if return_embedding is not None:
            postprocess["return_embedding"] = preprocess["return_embedding"] = return_embedding
        if return_segments is not None:
            postprocess["return_segments"] = return_segments
        if return_segments and hop_seconds is None and "hop_seconds" not in getattr(self, "_preprocess_params", {}):
            # segments are as fine as the hop: overlapping windows by default (docs/segments.md)
            preprocess["hop_seconds"] = SEGMENT_HOP * self.model.config.chunk_samples / SAMPLING_RATE
        return preprocess, {}, postprocess

    # -- the three stages ---------------------------------------------------------------------------------

    def preprocess(self, inputs, hop_seconds: float | None = None, window_batch_size: int | None = None,
                   max_seconds: float | None = None, min_seconds: float | None = None,
                   sampling_rate: int | None = None, return_embedding: bool = False,
                   trim_silence_db: float | bool | None = None) -> Iterator[dict]:
        chunk = self.model.config.chunk_samples
        if trim_silence_db is None:  # the model's own setting
            trim_silence_db = getattr(self.model.config, "trim_silence_db", None)
        hop = chunk if hop_seconds is None else int(round(hop_seconds * SAMPLING_RATE))
        if hop <= 0:
            raise ValueError(f"hop_seconds must be positive, got {hop_seconds}.")
        if window_batch_size is None:
            window_batch_size = default_window_batch_size(self.device)
        if window_batch_size < 1:
            raise ValueError(f"window_batch_size must be at least 1, got {window_batch_size}.")
        source = _StreamingSource(inputs, sampling_rate, max_seconds, min_seconds, checked_trim_db(trim_silence_db))
        try:
            refuse_too_short(source.num_samples)
            starts = window_starts(source.num_samples, chunk, hop)
            stats = AudioStats()
            spectrum = SpectrumStatistics() if self._needs_identity_features(return_embedding) else None
            for first in range(0, len(starts), window_batch_size):
                batch_starts = starts[first : first + window_batch_size]
                raw = [source.read(s, chunk) for s in batch_starts]
                for start, window in zip(batch_starts, raw):
                    stats.add(start, window)
                    if spectrum is not None:
                        spectrum.add(start, window)
                yield {
                    "input_values": torch.from_numpy(np.stack([fit_to_length(w, chunk) for w in raw])),
                    "starts": batch_starts,
                    "num_samples": source.num_samples,
                    "offset": source.offset,
                    "recording_samples": source.recording_samples,
                    "audio_stats": stats,  # complete once the last batch is read
                    "spectrum": spectrum,  # likewise; None without a codec identity
                    "decoded": source.waveform,  # segments read their own audio from it, not decode it again
                    "is_last": first + window_batch_size >= len(starts),
                }
        finally:
            source.close()

    def _needs_identity_features(self, return_embedding: bool) -> bool:
        """Whether a clip's codec-identity features are computed: with a codec identity, where the clip is compared
        with enrolled generators or its embedding is asked for (they cost about a tenth of a small model's pass)."""
        wanted = return_embedding or (self.enrolment is not None and bool(self.enrolment.generators))
        return self.codec_identity is not None and wanted

    def _forward(self, model_inputs: dict) -> dict:
        logits, unknown_scores, embeddings = self._model_step(model_inputs["input_values"])
        return {"logits": logits, "unknown_scores": unknown_scores, "embeddings": embeddings,
                **{key: model_inputs[key] for key in CLIP_KEYS}}

    @property
    def identity_task(self) -> str:
        """The head whose embedding identifies enrolled generators."""
        return self.enrolment.task if self.enrolment is not None else EnrolmentStore().task

    @property
    def identity_space(self) -> str:
        """The space clips are compared in for enrolment: the codec identity's beside the model, else `raw`."""
        return self.codec_identity.space if self.codec_identity is not None else RAW_SPACE

    def _model_step(self, input_values: torch.Tensor) -> tuple[dict, dict, np.ndarray]:
        """Per task, the windows' logits (with a frame head, under `frame` its (windows, frames, 2) logits); per head
        of the unknown-source scorer, their scores; the windows' embeddings of the identity head (numpy)."""
        values = input_values.to(self.device, input_dtype(self.resolved_precision, self.device))
        with torch.inference_mode(), autocast(self.resolved_precision, self.device):
            outputs = self.model(input_values=values)
        logits = {task: outputs.logits_for(task).float().cpu().numpy() for task in self.model.config.tasks}
        if outputs.frame_logits is not None:
            logits["frame"] = outputs.frame_logits.float().cpu().numpy()
        unknown_scores = {}
        if self.unknown_source is not None:
            unknown_scores = self.unknown_source.scores(
                {task: outputs.embeddings[task].float().cpu().numpy() for task in self.unknown_source.heads})
        identity = outputs.embeddings.get(self.identity_task) if outputs.embeddings else None
        embeddings = identity.float().cpu().numpy() if identity is not None else None
        return logits, unknown_scores, embeddings

    def postprocess(self, model_outputs, return_windows: bool = False, threshold: float = 0.5,
                    return_embedding: bool = False, return_segments: bool = False) -> dict:
        if isinstance(model_outputs, dict):
            model_outputs = [model_outputs]
        tasks = self.model.config.tasks
        logits = {t: np.concatenate([o["logits"][t] for o in model_outputs]) for t in model_outputs[0]["logits"]}
        unknown_scores = {t: float(np.mean(np.concatenate([o["unknown_scores"][t] for o in model_outputs])))
                          for t in (self.unknown_source.heads if self.unknown_source is not None else ())}
        known = {t: self.unknown_source.known(t, score) for t, score in unknown_scores.items()}
        # The spoof score reads the heads as calibrated for known codecs; a head's own answer, when its clip is
        # called unknown, the temperature fitted on unseen codecs (`calibration_temperatures_unknown`).
        stacked = {t: softmax(logits[t]) for t in tasks}
        window_spoof = spoof_probability(stacked)
        stacked.update({t: softmax(logits[t] * unknown_rescaling(self.model.config, t))
                        for t, is_known in known.items() if not is_known})
        starts = [s for o in model_outputs for s in o["starts"]]
        num_samples, offset = model_outputs[0]["num_samples"], model_outputs[0]["offset"]
        shift = offset / SAMPLING_RATE  # the analysed span's time 0, in the recording's time
        spoof_score = float(window_spoof.mean())
        result = {
            "spoof_score": spoof_score,
            "decision": "spoof" if spoof_score >= threshold else "bonafide",
            "num_windows": len(starts),
            "duration_seconds": model_outputs[0]["recording_samples"] / SAMPLING_RATE,
            "analysed_seconds": [shift, shift + num_samples / SAMPLING_RATE],
            "warnings": input_warnings(model_outputs[-1]["audio_stats"], self.model.config.chunk_samples),
        }
        frame_spoof = softmax(logits.pop("frame"))[..., SPOOF_INDEX] if "frame" in logits else None
        for task in tasks:
            mean = stacked[task].mean(axis=0)
            result[task] = {name: float(p) for name, p in zip(TASK_LABELS[task], mean)}
        embedding = self._clip_embedding(model_outputs)
        attribution = self.attribution(embedding, unknown_scores)
        result["heads"] = corrected_heads(self._head_answers(result, unknown_scores, known),
                                          {t: result[t] for t in tasks}, attribution)
        result["generator"] = attribution.as_answer()
        if known.get("bin") is False:
            result["warnings"].append(UNFAMILIAR_AUDIO)
        if return_embedding:
            result["embedding"] = None if embedding is None else embedding.tolist()
        if return_segments:
            windows = self._window_scores(model_outputs, starts, window_spoof, logits, frame_spoof)
            result["segments"], result["contains_spoof_score"] = find_segments(windows, threshold)
            for segment in result["segments"]:
                segment["start_seconds"] += shift
                segment["end_seconds"] += shift
            result["contains_spoof"] = bool(result["segments"])
            if frame_spoof is not None:
                scores, step, first = frame_head_scores(windows)
                result["frame_spoof_scores"] = {"start_seconds": first + shift, "step_seconds": step,
                                                "scores": scores.round(4).tolist()}
        if return_windows:
            chunk = self.model.config.chunk_samples
            result["windows"] = [
                {"start_seconds": shift + s / SAMPLING_RATE,
                 "end_seconds": shift + min(s + chunk, num_samples) / SAMPLING_RATE,
                 "spoof_score": float(window_spoof[i]),
                 **{t: {n: float(p) for n, p in zip(TASK_LABELS[t], stacked[t][i])} for t in tasks},
                 **({} if frame_spoof is None else {"frame_spoof_scores": frame_spoof[i].tolist()})}
                for i, s in enumerate(starts)
            ]
        return result

    def _window_scores(self, model_outputs: list[dict], starts: list[int], window_spoof: np.ndarray,
                       logits: dict[str, np.ndarray], frame_spoof: np.ndarray | None) -> WindowScores:
        heads = self.unknown_source.heads if self.unknown_source is not None else {}
        chunk = self.model.config.chunk_samples
        return WindowScores(
            np.asarray(starts), chunk, model_outputs[0]["num_samples"], window_spoof,
            {t: softmax(values) for t, values in logits.items()},
            {t: np.concatenate([o["unknown_scores"][t] for o in model_outputs]) for t in heads},
            {t: head.threshold for t, head in heads.items()},
            frame_spoof, None if frame_spoof is None else self.model.config.frame_layout(chunk))

    def _clip_embedding(self, model_outputs: list[dict]) -> np.ndarray | None:
        """The clip's embedding where enrolled generators are compared: its identity features mapped by the model's
        codec identity; without one, the mean of its windows' identity-head embeddings scaled to unit length. None
        where there is neither (or the clip is shorter than one spectrum frame)."""
        if self.codec_identity is not None:
            spectrum = model_outputs[-1]["spectrum"]
            features = None if spectrum is None else spectrum.features()
            return None if features is None else self.codec_identity(features[None])[0]
        if model_outputs[0]["embeddings"] is None:
            return None
        return unit_rows(np.concatenate([o["embeddings"] for o in model_outputs]).mean(axis=0, keepdims=True))[0]

    def attribution(self, embedding: np.ndarray | None, unknown_scores: dict[str, float]) -> Attribution:
        """A clip's enrolled generator (or none) from its embedding (`return_embedding`) and its heads' unknown-source
        scores, by the rule the pipeline answers with."""
        if self.enrolment is None or embedding is None:
            return Attribution(None, None)
        self.enrolment.adopt_space(self.identity_space)
        # Nearer to a generator than to the training data: than to every training source's centroid where the model
        # has a codec identity, else than the head's unknown-source score says the clip is from its training data.
        training = (self.codec_identity.training_distances(embedding[None])[0] if self.codec_identity is not None
                    else unknown_scores.get(self.enrolment.task))
        return self.enrolment.attribute(self.enrolment.distances(embedding[None])[0], training)

    def _head_answers(self, result: dict, unknown_scores: dict[str, float], known: dict[str, bool]) -> dict:
        """Per head: the most probable label, its probability and, for the taxonomy heads where the model has an
        unknown-source scorer, the clip's score (the mean over its windows) and whether the clip is `known`."""
        answers = {}
        for task in self.model.config.tasks:
            label = max(result[task], key=result[task].get)
            answers[task] = {"label": label, "probability": result[task][label],
                             "unknown_score": unknown_scores.get(task), "known": known.get(task)}
        return answers

    def trace_many(self, inputs: Iterable, group_size: int | None = None, **kwargs) -> Iterator[dict | Exception]:
        """
        Results of many clips, in order, with the windows of consecutive clips batched together (a folder of short
        clips fills a batch as one long clip does; 1.6x the throughput of one call per 4-s clip on a CPU with AMX).
        Takes the call arguments of `__call__`. A clip that fails yields its exception (`ValueError`,
        `RuntimeError`, `OSError`) and the others go on; an input that already is one of those exceptions (a file
        that could not be read) is yielded back in its place. Memory holds at most one batch of windows.

        With `group_size`, windows are batched only within consecutive groups of that many clips: a clip's result
        then depends only on its group, not on where a run starts or how its inputs are split among processes
        (matrix products give other last bits for other batch compositions).
        """
        preprocess_params, _, postprocess_params = self._sanitize_parameters(**kwargs)
        # the arguments given at construction, as a call fuses them
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        batch_size = preprocess_params.get("window_batch_size") or default_window_batch_size(self.device)
        finished: dict[int, dict | Exception] = {}
        gathered: dict[int, list] = {}  # clip -> its model outputs so far
        audios: dict[int, object] = {}  # clip -> its input, while its segments may need their audio
        queue: list[tuple[int, dict]] = []  # (clip, model inputs) waiting for the model
        next_out = 0

        def run_queue():
            logits, scores, embeddings = self._model_step(torch.cat([item["input_values"] for _, item in queue]))
            first = 0
            for clip, item in queue:
                rows = slice(first, first + item["input_values"].shape[0])
                first = rows.stop
                gathered[clip].append({"logits": {t: v[rows] for t, v in logits.items()},
                                       "unknown_scores": {t: v[rows] for t, v in scores.items()},
                                       "embeddings": None if embeddings is None else embeddings[rows],
                                       **{k: item[k] for k in CLIP_KEYS}})
                if item["is_last"]:
                    finished[clip] = self._clip_result(gathered.pop(clip), audios.pop(clip), preprocess_params,
                                                       postprocess_params)
            queue.clear()

        for clip, audio in enumerate(inputs):
            if isinstance(audio, CLIP_FAILURES):
                finished[clip] = audio
            else:
                gathered[clip], audios[clip] = [], audio
                try:
                    for item in self.preprocess(audio, **preprocess_params):
                        if queue and sum(i["input_values"].shape[0] for _, i in queue) + item[
                                "input_values"].shape[0] > batch_size:
                            run_queue()
                        queue.append((clip, item))
                except CLIP_FAILURES as error:
                    queue[:] = [(c, i) for c, i in queue if c != clip]
                    gathered.pop(clip)
                    audios.pop(clip)
                    finished[clip] = error
            if group_size and (clip + 1) % group_size == 0 and queue:
                run_queue()
            while next_out in finished:
                yield finished.pop(next_out)
                next_out += 1
        if queue:
            run_queue()
        while next_out in finished:
            yield finished.pop(next_out)
            next_out += 1

    def answer_segments_from_their_audio(self, inputs, segments: list[dict], sampling_rate: int | None = None,
                                         decoded: np.ndarray | None = None) -> None:
        """Gives each segment (of `inputs`' result) the heads' answers on its own audio, traced as a clip (at most one
        window of it, its middle: one extra window per segment): a spoofed stretch is mostly a small part of the
        windows over it, whose bona fide speech would answer for it (chosen on validation data over the windows'
        answers, docs/research/frame_head.md). A segment whose audio cannot be traced keeps the windows' answers.
        `decoded`, where preprocess decoded the whole recording (16 kHz mono), is read instead of `inputs`."""
        if not segments:
            return
        if decoded is not None:
            inputs, sampling_rate = decoded, SAMPLING_RATE
        elif hasattr(inputs, "seek"):  # a file object that preprocess has read to its end
            inputs.seek(0)
        chunk = self.model.config.chunk_samples
        source = _StreamingSource(inputs, sampling_rate, None, None)
        try:
            clips = []
            for segment in segments:
                start = int(round(segment["start_seconds"] * SAMPLING_RATE))
                length = int(round((segment["end_seconds"] - segment["start_seconds"]) * SAMPLING_RATE))
                clips.append(source.read(start + max(length - chunk, 0) // 2, min(length, chunk)))
        finally:
            source.close()
        for segment, clip in zip(segments, clips):
            try:
                heads = self.run_single(clip, {"sampling_rate": SAMPLING_RATE}, {}, {})["heads"]
            except CLIP_FAILURES:
                continue
            segment["heads"] = {task: {key: answer[key] for key in ("label", "probability", "known")}
                                for task, answer in heads.items()}

    # Each input yields several model batches (windows); gather them before postprocess.
    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        outputs = [self.forward(batch, **forward_params) for batch in self.preprocess(inputs, **preprocess_params)]
        return self._clip_result(outputs, inputs, preprocess_params, postprocess_params)

    def _clip_result(self, outputs: list[dict], inputs, preprocess_params: dict, postprocess_params: dict) -> dict:
        """One clip's result from its windows' model outputs; with segments asked, each answered from its own audio
        (the same for run_single and trace_many)."""
        result = self.postprocess(outputs, **postprocess_params)
        if postprocess_params.get("return_segments"):
            self.answer_segments_from_their_audio(inputs, result["segments"], preprocess_params.get("sampling_rate"),
                                                  outputs[0]["decoded"])
        return result

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        for item in inputs:
            yield self.run_single(item, preprocess_params, forward_params, postprocess_params)
