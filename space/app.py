"""CodecTrace Space: drop a clip, see whether it is bona fide or codec-generated and what kind of codec made it.

Model: `CODECTRACE_MODEL` (folder or hub id) at `CODECTRACE_REVISION`; default: the project's local demo model
(`outputs/demo-M1`, made by `python train.py`), else a clearly labelled untrained tiny model. Starts offline.
Limits: `CODECTRACE_MAX_SECONDS` (default 300) and `CODECTRACE_MAX_MB` (default 30), checked before decoding.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import copy  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import soundfile as sf  # noqa: E402

from codectrace.audio import short_message  # noqa: E402
from codectrace.enrolment import enrollable_labels  # noqa: E402
from codectrace.timeline import segment_family, timeline_figure  # noqa: E402
from modeling_codectrace.configuration_codectrace import (  # noqa: E402
    LABEL_DESCRIPTIONS,
    TASK_DESCRIPTIONS,
    TASK_LABELS,
    TASKS,
    TAXONOMY_TASKS,
)

ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL_DIRS = (ROOT / "model", ROOT.parent / "outputs" / "demo-M1")
MAX_SECONDS = float(os.environ.get("CODECTRACE_MAX_SECONDS", 300))
MAX_MB = float(os.environ.get("CODECTRACE_MAX_MB", 30))
# Requests run one at a time (the model uses every core); the queue holds as many as can be answered within this wait.
MAX_WAIT_SECONDS = float(os.environ.get("CODECTRACE_MAX_WAIT_SECONDS", 120))
MIN_QUEUE = 32  # never fewer places than this, whatever the timing (20 people at once must all be answered)
TASK_TITLES = {"bin": "Bona fide or spoof", "vq": "Quantizer (VQ)", "aux": "Auxiliary objective (AUX)",
               "dec": "Decoder (DEC)"}
LIMITS_NOTE = f"""**Limits and misuse.** Scores are evidence for human review, not proof: do not use them alone for
forensic, legal or moderation decisions or to judge a person. The model was trained on specific codecs; unseen
codecs, telephone channels, noise and re-encoding make it less reliable. By default only {{window:.2f}}-s windows are
scored and averaged. Clips up to {MAX_SECONDS:g} s and {MAX_MB:g} MB."""


@dataclass
class LoadedModel:
    tracer: object
    name: str
    revision: str | None
    trained: bool
    enrolled: object = None  # the generators enrolled beside the model (an EnrolmentStore), or None

    def __post_init__(self):
        self.enrolled = self.tracer.enrolment

    @property
    def trained_on(self) -> str:
        """What the model was trained on, from its card (a local folder's, or the Hub repo's where it is cached)."""
        from codectrace.model_card import training_summary

        card = Path(self.name) / "README.md"
        if not card.is_file():
            try:
                from huggingface_hub import hf_hub_download

                card = Path(hf_hub_download(self.name, "README.md", revision=self.revision))
            except (ValueError, OSError):
                return "unknown: the model has no card to say"
        return training_summary(card.read_text()) or "unknown: its card does not say"


def untrained_tiny_model(folder: Path) -> Path:
    """A random tiny model, written once, so the Space can start where no trained model exists."""
    import torch

    import modeling_codectrace as mc
    from codectrace.hub import save_model_folder
    from codectrace.presets import AASIST_SIZES, backbone_config

    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        config = mc.CodecTraceConfig(backbone_config=backbone_config("tiny"), variant="M1", **AASIST_SIZES["tiny"])
        save_model_folder(mc.CodecTraceForSourceTracing(config).eval(), mc.CodecTraceFeatureExtractor(), folder)
    return folder


def load_model() -> LoadedModel:
    """The model `CODECTRACE_MODEL` names (refused in one line when it does not resolve: the Space never starts
    half-broken), else the local demo model, else an untrained placeholder that the page and the log name."""
    from codectrace.errors import ToolError, one_line
    from codectrace.hub import load_tracer

    name = os.environ.get("CODECTRACE_MODEL")
    revision = os.environ.get("CODECTRACE_REVISION") or None
    if name:
        try:
            return LoadedModel(load_tracer(name, revision=revision), name, revision, trained=True)
        except ValueError as error:
            raise ToolError(f"CODECTRACE_MODEL={name}: {one_line(error)}") from None
    found, trained = next((d for d in DEFAULT_MODEL_DIRS if (d / "config.json").exists()), None), True
    if found is None:
        found, trained = untrained_tiny_model(Path(tempfile.gettempdir()) / "codectrace-untrained-tiny"), False
        print(f"warning: no trained model in {', '.join(map(str, DEFAULT_MODEL_DIRS))} and no CODECTRACE_MODEL: "
              "serving an untrained placeholder (the page says so); run `python train.py` for the demo model.",
              file=sys.stderr)
    return LoadedModel(load_tracer(str(found), revision=revision), str(found), revision, trained)


def check_upload(path: str | None) -> None:
    """Refuses what the app will not decode, before decoding it."""
    if not path:
        raise gr.Error("No audio received: upload a file or record a clip first.")
    size_mb = os.path.getsize(path) / 2**20
    if size_mb == 0:
        raise gr.Error("The file is empty.")
    if size_mb > MAX_MB:
        raise gr.Error(f"The file is {size_mb:.1f} MB; the limit is {MAX_MB:g} MB.")
    try:
        info = sf.info(path)
        seconds = info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        seconds = probe_seconds(path)
    if seconds is not None and seconds > MAX_SECONDS:
        raise gr.Error(f"The clip lasts {seconds:.0f} s; the limit is {MAX_SECONDS:g} s.")


def probe_seconds(path: str) -> float | None:
    import shutil
    import subprocess

    if shutil.which("ffprobe") is None:
        return None
    result = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                            capture_output=True, text=True, timeout=30)
    try:
        return float(result.stdout.strip())
    except ValueError:
        raise gr.Error("This file is not audio that can be decoded (tried soundfile and FFmpeg).") from None


UNKNOWN = "not one of the codec families it knows"


def explain(task: str, answer: dict) -> str:
    """One line per head: its label and probability, or that the clip is not of a kind the model was trained on
    (with the enrolled generator's class where the clip is attributed to one)."""
    if answer.get("enrolled"):
        return (f"**{TASK_TITLES[task]}**: `{answer['label']}`, the enrolled class of {answer['enrolled']} (the model "
                f"itself does not know this codec): {LABEL_DESCRIPTIONS[task][answer['label']]}.")
    if answer["known"] is False and task == "bin":
        return (f"**{TASK_TITLES[task]}**: `{answer['label']}` ({100 * answer['probability']:.0f}%), on audio unlike "
                "everything the model was trained on: read this verdict with care.")
    if answer["known"] is False:
        return (f"**{TASK_TITLES[task]}**: {UNKNOWN} (its `{answer['label']}` answer, "
                f"{100 * answer['probability']:.0f}%, is not to be trusted).")
    return (f"**{TASK_TITLES[task]}**: most likely `{answer['label']}` ({100 * answer['probability']:.0f}%): "
            f"{LABEL_DESCRIPTIONS[task][answer['label']]}.")


def make_handler(loaded: LoadedModel):
    tasks = loaded.tracer.model.config.tasks

    calibrated = bool(getattr(loaded.tracer.model.config, "calibration_temperatures", None))
    meaning = ("a probability calibrated on validation data" if calibrated
               else "not calibrated: a score, not a probability")

    def analyse(path: str | None, session_store=None):
        check_upload(path)
        loaded.tracer.enrolment = session_store if session_store is not None else loaded.enrolled
        try:
            result = loaded.tracer(path, return_windows=True, return_segments=True, max_seconds=MAX_SECONDS)
        except ValueError as error:
            raise gr.Error(short_message(error) + ".") from None
        verdict = "Spoof (codec-generated)" if result["decision"] == "spoof" else "Bona fide"
        cautions = "".join(f"> **Warning**: {w}.\n\n" for w in result["warnings"])
        summary = cautions + (f"## {verdict}\nSpoof score **{result['spoof_score']:.3f}** ({meaning}; threshold "
                              f"0.5), {result['duration_seconds']:.1f} s of audio in {result['num_windows']} "
                              "window(s).")
        start, end = result["analysed_seconds"]
        if end - start < result["duration_seconds"] - 1e-3:
            summary += (f" Silence before and after the speech was cut: the verdict rests on {start:.2f}-{end:.2f} s "
                        f"of the recording.")
        if not loaded.trained:
            summary += "\n\n> This is an **untrained** placeholder model: its answers are meaningless."
        labels = [result[t] if t in tasks else None for t in TASKS]
        explanations = "\n\n".join(explain(t, result["heads"][t]) for t in tasks)
        if result["generator"]:
            generator = result["generator"]
            score = ("" if generator["score"] is None
                     else f"probability {generator['score']:.2f} that it made this clip, ")
            summary += (f"\n\n**Made by `{generator['name']}`**, an enrolled generator ({score}cosine distance "
                        f"{generator['distance']:.3f} to its enrolled clips).")
        if result["segments"] and result["decision"] != "spoof":
            summary += "\n\n**Contains spoofed speech** (the average is bona fide): " + ", ".join(
                f"{s['start_seconds']:.1f}-{s['end_seconds']:.1f} s ({segment_family(s)})" for s in result["segments"])
        plot = (timeline_figure(result["windows"], result["segments"], frames=result.get("frame_spoof_scores"))
                if result["num_windows"] > 1 else None)
        return summary, *labels, explanations, plot

    return analyse


def enrolled_table(store) -> str:
    from codectrace.enrolment_cli import describe

    return "**Enrolled generators**\n\n" + (describe(store) if store is not None else "none.")


def make_enroller(loaded: LoadedModel):
    """Enrols uploaded clips under a name into this browser session's copy of the store (never saved)."""
    from codectrace.enrolment import EnrolmentStore, enrollable_embedding

    def enrol(paths: list[str] | None, name: str, vq: str | None, aux: str | None, dec: str | None,
              session_store=None):
        if not paths:
            raise gr.Error("No clips received: upload one or more clips of the generator.")
        store = copy.deepcopy(session_store if session_store is not None else loaded.enrolled) or EnrolmentStore()
        try:
            store.adopt_space(loaded.tracer.identity_space)
        except ValueError as error:
            raise gr.Error(short_message(error)) from None
        loaded.tracer.enrolment = store  # the identity head is the store's
        embeddings = []
        for path in paths:
            check_upload(path)
            try:
                embeddings.append(enrollable_embedding(loaded.tracer(path, return_embedding=True,
                                                                     max_seconds=MAX_SECONDS)))
            except ValueError as error:
                raise gr.Error(f"{Path(path).name}: {short_message(error)}.") from None
        taxonomy = {task: label for task, label in zip(TAXONOMY_TASKS, (vq, aux, dec)) if label}
        try:
            store.add((name or "").strip(), embeddings, taxonomy)
        except ValueError as error:
            raise gr.Error(short_message(error)) from None
        return store, enrolled_table(store)

    return enrol


# Two clips made by the project (examples/README.md): synthesizer speech, and its re-synthesis by a codec the demo
# model never trained on.
EXAMPLES = sorted(str(path) for path in (ROOT / "examples").glob("*.wav"))


def queue_size(handler, clip: str) -> int:
    """Places in the queue: how many requests fit in MAX_WAIT_SECONDS at the time one request takes here (the
    example clip, timed once after a warm-up), and at least MIN_QUEUE."""
    handler(clip)  # warm-up
    start = time.perf_counter()
    handler(clip)
    seconds = time.perf_counter() - start
    return max(MIN_QUEUE, int(MAX_WAIT_SECONDS / max(seconds, 1e-3)))


def build_app(loaded: LoadedModel | None = None) -> gr.Blocks:
    loaded = loaded or load_model()
    config = loaded.tracer.model.config
    handler = make_handler(loaded)
    enroller = make_enroller(loaded)
    with gr.Blocks(title="CodecTrace: codec-based deepfake source tracing") as app:
        gr.Markdown("# CodecTrace\nIs this speech bona fide, or generated by a neural audio codec, and which kind of "
                    "codec? Based on *Codec-Based Deepfake Source Tracing via Neural Audio Codec Taxonomy* "
                    "(Chen et al., Interspeech 2025).")
        status = "" if loaded.trained else " (**untrained placeholder**: run `python train.py` for the demo model)"
        trained_on = f"\n\n**What the model was trained on**: {loaded.trained_on}" if loaded.trained else ""
        gr.Markdown(f"Model: `{loaded.name}`" + (f" @ `{loaded.revision}`" if loaded.revision else "") +
                    f", variant {config.variant}{status}{trained_on}", elem_id="model-info")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Clip")
                button = gr.Button("Trace", variant="primary", elem_id="trace-button")
                gr.Examples(EXAMPLES, inputs=audio)
            with gr.Column():
                verdict = gr.Markdown(elem_id="verdict")
                label_boxes = [gr.Label(label=f"{TASK_TITLES[t]}: {TASK_DESCRIPTIONS[t]}", num_top_classes=len(
                    TASK_LABELS[t]), visible=t in config.tasks, elem_id=f"label-{t}") for t in TASKS]
                explanation = gr.Markdown(elem_id="explanation")
        plot = gr.Plot(label="Spoof score over time (clips longer than one window)")
        session_store = gr.State(None)
        with gr.Accordion("Enrol a generator from a few of its clips (this session only, not saved)", open=False):
            enrolled = gr.Markdown(enrolled_table(loaded.enrolled), elem_id="enrolled")
            with gr.Row():
                enrol_clips = gr.File(file_count="multiple", type="filepath", label="Its clips")
                with gr.Column():
                    enrol_name = gr.Textbox(label="Generator name", elem_id="enrol-name")
                    classes = [gr.Dropdown([None, *enrollable_labels(t)], value=None,
                                           label=f"{TASK_TITLES[t]}, where published") for t in TAXONOMY_TASKS]
                    enrol_button = gr.Button("Enrol", elem_id="enrol-button")
        gr.Markdown(LIMITS_NOTE.format(window=config.chunk_samples / config.sampling_rate))
        button.click(handler, inputs=[audio, session_store], outputs=[verdict, *label_boxes, explanation, plot],
                     api_name="trace", concurrency_limit=1, concurrency_id="model")
        enrol_button.click(enroller, inputs=[enrol_clips, enrol_name, *classes, session_store],
                           outputs=[session_store, enrolled], api_name="enrol", concurrency_limit=1,
                           concurrency_id="model")
    size = queue_size(handler, EXAMPLES[-1])
    print(f"queue: {size} places (one request at a time, answers within about {MAX_WAIT_SECONDS:g} s)",
          file=sys.stderr)
    app.queue(max_size=size, default_concurrency_limit=1)
    return app


if __name__ == "__main__":
    from codectrace.errors import run_tool

    sys.exit(run_tool(lambda: build_app().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))))
