"""scripts/setup.sh refuses up front, with the space it needs, when the disk cannot hold the environment."""

import shutil
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def bare_project(tmp_path):
    """A project copy whose .venv has no torch yet, with dpkg, df and pip stubbed out."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(SETUP, project / "scripts" / "setup.sh")
    venv_bin = project / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    _stub(venv_bin / "python", "exit 1")  # `import torch` fails: nothing installed yet
    _stub(venv_bin / "pip", f"touch {tmp_path}/pip-ran")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _stub(stubs / "dpkg", "exit 0")  # every apt package counts as installed
    return project, stubs


def _run_setup(project: Path, stubs: Path, free_kib: int) -> subprocess.CompletedProcess:
    _stub(stubs / "df", f'echo "Filesystem 1024-blocks Used Available Capacity Mounted"; '
                        f'echo "/dev/x 100 0 {free_kib} 1% /"')
    env = {"PATH": f"{stubs}:/usr/bin:/bin"}
    return subprocess.run(["bash", "scripts/setup.sh"], cwd=project, env=env, capture_output=True, text=True)


def test_setup_refuses_before_pip_when_the_disk_is_too_small(bare_project, tmp_path):
    project, stubs = bare_project
    result = _run_setup(project, stubs, free_kib=2 * 1024 * 1024)
    assert result.returncode == 1
    assert "needs about 7 GiB of free disk" in result.stderr and "only 2 GiB are free" in result.stderr
    assert not (tmp_path / "pip-ran").exists()


def test_setup_goes_on_to_pip_when_the_disk_has_room(bare_project, tmp_path):
    project, stubs = bare_project
    result = _run_setup(project, stubs, free_kib=50 * 1024 * 1024)
    assert "free disk" not in result.stderr
    assert (tmp_path / "pip-ran").exists()


def test_setup_installs_the_debian_packages_of_every_real_voice_corpus(bare_project, tmp_path):
    from speech_sources.real_speech import REAL_CORPORA

    project, stubs = bare_project
    _stub(stubs / "dpkg", "exit 1")  # nothing installed: setup asks apt for every package
    _stub(stubs / "apt-get", f'echo "$@" >> {tmp_path}/apt-args')
    _stub(stubs / "id", "echo 0")
    _run_setup(project, stubs, free_kib=50 * 1024 * 1024)
    asked = set((tmp_path / "apt-args").read_text().split())
    assert {package for corpus in REAL_CORPORA.values() for package in corpus.packages} <= asked
