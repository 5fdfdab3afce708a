"""The layers' import rules: the model core (the files that travel with a checkpoint) imports only the standard
library, torch and transformers (and numpy, which transformers requires and its own feature extractors use); the
tools never import the layer above; nothing imports a script; the product never imports the research probes; production
code does not import the test helpers."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "modeling_codectrace"
CORE_FILES = {"__init__.py", "configuration_codectrace.py", "modeling_codectrace.py", "aasist.py", "stft_phase.py",
              "feature_extraction_codectrace.py"}
ALLOWED_IN_CORE = set(sys.stdlib_module_names) | {"torch", "transformers", "numpy"}
SCRIPTS = {"train", "app"}  # train.py, space/app.py


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every absolute import in a file, function-level imports included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_folder_holds_only_the_files_that_travel_with_a_checkpoint():
    assert {p.name for p in CORE.glob("*.py")} == CORE_FILES


@pytest.mark.parametrize("name", sorted(CORE_FILES))
def test_a_core_file_imports_only_the_standard_library_torch_and_transformers(name):
    outside = imported_modules(CORE / name) - ALLOWED_IN_CORE
    assert not outside, f"{name} imports {sorted(outside)}"


@pytest.mark.slow
def test_importing_the_core_loads_none_of_the_tools_and_their_libraries():
    # (transformers itself imports soundfile, torchaudio and scipy where they are installed)
    probe = ("import sys, modeling_codectrace; print(sorted(m for m in ('codectrace', 'datasets', 'torchcodec', "
             "'gradio', 'sklearn', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def _python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py")]


def test_nothing_imports_a_script():
    for path in _python_files("modeling_codectrace", "codectrace", "dataset_scripts", "codec_zoo", "benchmarks",
                              "research", "space", "tests"):
        assert not imported_modules(path) & SCRIPTS, path


PACKAGES = ("modeling_codectrace", "codectrace", "speech_sources", "codec_zoo", "dataset_scripts", "space",
            "benchmarks", "research")


def package_imports() -> dict[str, set[str]]:
    """Top-level package -> the other top-level packages its files import."""
    return {package: set().union(*(imported_modules(p) for p in _python_files(package))) & set(PACKAGES) - {package}
            for package in PACKAGES}


def test_no_import_cycle_between_top_level_packages():
    graph = package_imports()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph[start])

    cycles = sorted(package for package in PACKAGES if reaches(package, package, {package}))
    assert cycles == [], f"these packages reach themselves through their imports: {cycles}"


def test_the_product_never_imports_the_research_probes():
    product = [ROOT / "train.py", *_python_files("modeling_codectrace", "codectrace", "dataset_scripts", "codec_zoo",
                                                 "benchmarks", "space")]
    for path in product:
        assert "research" not in imported_modules(path), path.relative_to(ROOT)


def _changes_the_import_path(path: Path) -> bool:
    """Whether the file reads `sys.path` (to put a folder of scripts on it)."""
    return any(isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
               and node.value.id == "sys" for node in ast.walk(ast.parse(path.read_text())))


def test_no_test_reaches_a_module_by_changing_the_import_path():
    for path in _python_files("tests"):
        assert not _changes_the_import_path(path), path.relative_to(ROOT)


def test_the_tools_never_import_the_layer_above():
    for path in _python_files("codectrace"):
        above = imported_modules(path) & {"dataset_scripts", "codec_zoo", "space", "benchmarks"}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


def test_production_code_does_not_use_the_test_helpers():
    production = [ROOT / "train.py", *_python_files("codectrace", "dataset_scripts", "codec_zoo", "space")]
    for path in production:
        if path.name == "testing.py":
            continue
        assert "codectrace.testing" not in path.read_text() and "from .testing" not in path.read_text(), path
