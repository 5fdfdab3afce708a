"""The Gradio Space: handler, a served app driven by gradio_client, and a real browser (headless Chromium)."""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import modeling_codectrace as mc
from codectrace.hub import save_model_folder
from codectrace.testing import tiny_config

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def app_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("space-model")
    torch.manual_seed(0)
    save_model_folder(mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=16000)).eval(),
                      mc.CodecTraceFeatureExtractor(chunk_samples=16000), folder)
    os.environ["CODECTRACE_MODEL"] = str(folder)
    os.environ["CODECTRACE_MAX_SECONDS"] = "20"
    spec = importlib.util.spec_from_file_location("codectrace_space_app", ROOT / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    os.environ.pop("CODECTRACE_MODEL")
    os.environ.pop("CODECTRACE_MAX_SECONDS")


@pytest.fixture(scope="module")
def loaded(app_module):
    return app_module.load_model()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "voice.wav"
    t = np.arange(int(2.5 * 16000)) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2, 16000)
    return str(path)


def test_the_model_comes_from_the_environment(app_module, loaded):
    assert loaded.name == os.environ["CODECTRACE_MODEL"] and loaded.trained


def test_handler_returns_verdict_labels_explanations_and_plot(app_module, loaded, clip):
    summary, bin_label, vq, aux, dec, explanation, plot = app_module.make_handler(loaded)(clip)
    assert summary.startswith("## ") and "Spoof score" in summary
    assert set(bin_label) == {"spoof", "bonafide"} and set(vq) == {"real", "mvq", "svq", "sq"}
    assert "**Decoder (DEC)**: most likely" in explanation
    assert plot is not None  # 2.5 s with 1-s windows: several windows


def test_a_head_that_does_not_know_the_clip_says_so_instead_of_a_class(app_module):
    answer = {"label": "mvq", "probability": 0.81, "unknown_score": 9.0, "known": False}
    assert app_module.explain("vq", answer).startswith("**Quantizer (VQ)**: not one of the codec families it knows")
    assert "most likely `mvq` (81%)" in app_module.explain("vq", answer | {"known": True})


def test_a_verdict_on_unfamiliar_audio_is_given_with_a_caution_not_as_an_unknown_codec(app_module):
    answer = {"label": "spoof", "probability": 0.95, "unknown_score": 9.0, "known": False}
    line = app_module.explain("bin", answer)
    assert line.startswith("**Bona fide or spoof**: `spoof` (95%)") and "read this verdict with care" in line


def test_warnings_about_the_audio_stand_above_the_verdict(app_module, loaded, tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(16000 * 2, dtype=np.float32), 16000)
    summary = app_module.make_handler(loaded)(str(tmp_path / "quiet.wav"))[0]
    assert summary.startswith("> **Warning**: (near-)silence") and summary.index("Warning") < summary.index("## ")


def test_the_summary_says_which_part_was_read_when_silence_was_cut(app_module, loaded, clip, tmp_path, monkeypatch):
    voice, rate = sf.read(clip, dtype="float32")
    sf.write(tmp_path / "gated.wav", np.concatenate([np.zeros(rate), voice, np.zeros(rate // 2)]), rate)
    handler = app_module.make_handler(loaded)
    assert "was cut" not in handler(str(tmp_path / "gated.wav"))[0]  # the tiny model's config: no trimming
    monkeypatch.setattr(loaded.tracer.model.config, "trim_silence_db", 50.0)
    assert "the verdict rests on 1.00-3.50 s of the recording" in handler(str(tmp_path / "gated.wav"))[0]


def test_handler_refuses_bad_input_with_a_clear_message(app_module, loaded, tmp_path):
    import gradio as gr

    handler = app_module.make_handler(loaded)
    (tmp_path / "notes.txt").write_text("this is not audio")
    with pytest.raises(gr.Error, match="not audio"):
        handler(str(tmp_path / "notes.txt"))
    with pytest.raises(gr.Error, match="No audio received"):
        handler(None)
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 25, dtype=np.float32), 16000)
    with pytest.raises(gr.Error, match="the limit is 20 s"):
        handler(str(tmp_path / "long.wav"))
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(gr.Error, match="empty"):
        handler(str(tmp_path / "empty.wav"))


def test_untrained_placeholder_is_labelled(app_module, tmp_path, clip):
    folder = app_module.untrained_tiny_model(tmp_path / "placeholder")
    from codectrace.hub import load_tracer

    placeholder = app_module.LoadedModel(load_tracer(str(folder)), str(folder), None, trained=False)
    summary = app_module.make_handler(placeholder)(clip)[0]
    assert "untrained" in summary


def test_a_generator_enrolled_in_the_session_names_the_clips_it_made(app_module, loaded, clip):
    store, table = app_module.make_enroller(loaded)([clip], "Session-Gen", "sq", None, "freq", None)
    assert "| Session-Gen | 1 | sq | ? | freq |" in table
    summary = app_module.make_handler(loaded)(clip, store)[0]
    assert "**Made by `Session-Gen`**" in summary


def test_a_session_enrolment_is_not_seen_by_other_sessions(app_module, loaded, clip):
    app_module.make_enroller(loaded)([clip], "Session-Gen", None, None, None, None)
    assert loaded.enrolled is None and "Made by" not in app_module.make_handler(loaded)(clip)[0]


def test_a_head_answered_by_an_enrolled_generator_says_whose_class_it_is(app_module):
    answer = {"label": "sq", "probability": 0.1, "unknown_score": 9.0, "known": False, "enrolled": "Gen"}
    assert app_module.explain("vq", answer).startswith("**Quantizer (VQ)**: `sq`, the enrolled class of Gen")


@pytest.mark.parametrize("clips, name, message", [([], "x", "No clips received"), (["CLIP"], "", "generator name")])
def test_enrolment_in_the_space_refuses_what_it_cannot_enrol(app_module, loaded, clip, clips, name, message):
    import gradio as gr

    with pytest.raises(gr.Error, match=message):
        app_module.make_enroller(loaded)([clip if c == "CLIP" else c for c in clips], name, None, None, None, None)


@pytest.fixture(scope="module")
def served(app_module, loaded):
    app = app_module.build_app(loaded)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield app
    app.close()


def test_served_app_answers_gradio_client(served, clip):
    from gradio_client import Client, handle_file

    client = Client(served.local_url, verbose=False)
    summary, bin_label, *_ = client.predict(handle_file(clip), api_name="/trace")
    assert "Spoof score" in summary
    assert {c["label"] for c in bin_label["confidences"]} == {"spoof", "bonafide"}


def test_the_queue_is_sized_from_the_time_a_request_takes(app_module, loaded):
    handler = app_module.make_handler(loaded)
    assert app_module.queue_size(handler, app_module.EXAMPLES[0]) >= app_module.MIN_QUEUE >= 20


@pytest.mark.slow
def test_twenty_people_at_the_same_moment_are_all_answered(served, clip):
    """A bounded load test on localhost: 20 clients submit at once; every one gets a verdict, none is refused."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    clients = [Client(served.local_url, verbose=False) for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        jobs = [pool.submit(c.predict, handle_file(clip), api_name="/trace") for c in clients]
        summaries = [job.result(timeout=180)[0] for job in jobs]
    assert len(summaries) == 20 and all("Spoof score" in s for s in summaries)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.needs_chromium
@pytest.mark.slow
def test_a_browser_upload_shows_the_result_and_errors_then_recovers(served, clip, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    (tmp_path / "notes.txt").write_text("not audio at all")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        # Not "networkidle": the session's enrolment state keeps Gradio's heartbeat connection open.
        page.goto(served.local_url, wait_until="load")
        page.wait_for_selector("#trace-button")

        def upload_and_trace(path):
            page.locator("input[type=file]").first.set_input_files(str(path))
            page.wait_for_timeout(1500)
            page.click("#trace-button")

        upload_and_trace(clip)
        page.wait_for_selector("#verdict h2", timeout=60000)
        verdict = page.inner_text("#verdict")
        assert "Spoof" in verdict or "Bona fide" in verdict
        label_text = page.inner_text("#label-vq")
        assert "mvq" in label_text and "%" in label_text
        page.screenshot(path=str(ARTIFACTS / "space_result.png"), full_page=True)

        page.reload(wait_until="load")
        page.wait_for_selector("#trace-button")
        upload_and_trace(tmp_path / "notes.txt")
        error = page.wait_for_selector("text=/Invalid file type|not audio|No audio received/", timeout=60000)
        assert error is not None
        page.screenshot(path=str(ARTIFACTS / "space_error.png"), full_page=True)

        page.reload(wait_until="load")
        page.wait_for_selector("#trace-button")
        upload_and_trace(clip)
        page.wait_for_selector("#verdict h2", timeout=60000)
        assert "Spoof score" in page.inner_text("#verdict")
        browser.close()


def test_the_examples_are_files_that_the_app_serves(app_module):
    assert [Path(p).name for p in app_module.EXAMPLES] == ["example_bonafide.wav", "example_codec_resynthesis.wav"]
    for path in app_module.EXAMPLES:
        info = sf.info(path)
        assert info.samplerate == 16000 and info.channels == 1 and info.frames > 16000


def test_the_page_says_what_the_model_was_trained_on_from_its_card(app_module, loaded, tmp_path):
    from codectrace.model_card import training_summary

    demo_card = (ROOT / "model_card.md").read_text()
    assert training_summary(demo_card).startswith("Demo model: trained from scratch on CodecFake-mini")
    assert training_summary("---\na: b\n---\n# m\n\n| dataset | data/x (config `aux`) |\n") == (
        "trained on data/x (config `aux`)")
    assert loaded.trained_on == "unknown: the model has no card to say"  # the test's model folder has none
    (tmp_path / "README.md").write_text(demo_card)
    with_card = app_module.LoadedModel(loaded.tracer, str(tmp_path), None, trained=True)
    assert with_card.trained_on.startswith("Demo model: trained from scratch on CodecFake-mini")

