"""Folders written through staged_folder appear complete or not at all."""

import pytest

from codectrace.files import print_report, staged_folder


def test_a_finished_folder_replaces_the_old_one(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staged_folder(out) as partial:
        assert partial.name == "corpus.partial" and not any(partial.iterdir())
        (partial / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert not (tmp_path / "corpus.partial").exists()


def test_a_failed_write_leaves_the_old_folder_and_no_partial(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"), staged_folder(out) as partial:
        (partial / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert not (tmp_path / "corpus.partial").exists()


def test_a_leftover_partial_of_an_interrupted_run_is_cleared(tmp_path):
    (tmp_path / "corpus.partial").mkdir()
    (tmp_path / "corpus.partial" / "stale.txt").write_text("stale")
    with staged_folder(tmp_path / "corpus") as partial:
        assert not any(partial.iterdir())
    assert (tmp_path / "corpus").is_dir()


def test_a_report_is_printed_and_written_only_where_asked(tmp_path, capsys):
    print_report("| a | b |")
    assert capsys.readouterr().out == "| a | b |\n" and not list(tmp_path.iterdir())
    print_report("| a | b |", tmp_path / "docs" / "table.md")
    assert capsys.readouterr().out == "| a | b |\n"
    assert (tmp_path / "docs" / "table.md").read_text() == "| a | b |"
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["table.md"]  # no partial left behind

