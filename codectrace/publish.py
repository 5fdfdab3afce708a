"""`codectrace publish`: one command that uploads a trained model folder, a built dataset and the Space.

    codectrace publish --model-dir outputs/demo-M1 --model-repo USER/codectrace-demo-M1 \
        [--dataset-dir data/demo/dataset --dataset-repo USER/codecfake-demo] [--space-repo USER/codectrace] \
        [--private] [--stage-dir DIR]   # --stage-dir only prepares and checks the folders, uploads nothing

Every folder is checked before anything is uploaded: the model loads with its feature extractor and carries
its code files and card; the dataset is a finished build; the Space folder has app.py, its YAML header
(models / datasets filled in) and a requirements.txt that installs this package from the uploaded wheel. The Space
and the wheel come from a checkout of the codectrace repository: the current folder, or `--project-dir`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .dataset_folder import built_dataset_files, push_dataset_folder

MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "configuration_codectrace.py",
               "modeling_codectrace.py", "aasist.py", "feature_extraction_codectrace.py", "README.md")


class PublishError(ValueError):
    """A folder is not ready to publish; the message says what is missing."""


@dataclass
class Plan:
    model_dir: Path
    model_repo: str
    space_dir: Path | None = None
    space_repo: str | None = None
    dataset_dir: Path | None = None
    dataset_repo: str | None = None
    dataset_files: list[str] = field(default_factory=list)


def check_model_folder(folder: Path) -> None:
    from transformers import AutoFeatureExtractor

    from .resolve import check_model_folder as check_codectrace_folder
    from .resolve import load_model

    if not folder.is_dir():
        raise PublishError(f"--model-dir {folder}: no such folder.")
    missing = [name for name in MODEL_FILES if not (folder / name).exists()]
    if missing:
        raise PublishError(f"{folder} is not a complete model folder: missing {missing}. Train with train.py or "
                           "save with codectrace.hub.save_model_folder.")
    check_codectrace_folder(folder)
    load_model(str(folder))
    AutoFeatureExtractor.from_pretrained(folder)


def check_project_dir(project_dir: Path) -> Path:
    """The Space and the wheel are built from a checkout of the repository; refuse anything else up front."""
    missing = [name for name in ("pyproject.toml", "space/app.py", "space/README.md", "space/requirements.txt")
               if not (project_dir / name).is_file()]
    if missing:
        raise PublishError(f"--project-dir {project_dir} is not a checkout of the codectrace repository (no "
                           f"{', '.join(missing)}); run from one or give its folder.")
    return project_dir


def build_wheel(project_dir: Path, destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(destination), str(project_dir)], check=True)
    wheels = sorted(destination.glob("codectrace-*.whl"))
    if not wheels:
        raise PublishError("building the codectrace wheel produced no file.")
    return wheels[-1]


def stage_space(project_dir: Path, destination: Path, model_repo: str, dataset_repo: str | None) -> Path:
    """The Space folder as uploaded: app, card header pointing at the published repos, requirements + wheel."""
    source = project_dir / "space"
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "app.py", destination / "app.py")
    shutil.copytree(source / "examples", destination / "examples", dirs_exist_ok=True)
    card = (source / "README.md").read_text().replace("USER/codectrace-demo-M1", model_repo)
    if dataset_repo:
        card = card.replace("USER/codecfake-plus", dataset_repo)
    else:
        card = card.replace("datasets:\n- USER/codecfake-plus\n", "")
    (destination / "README.md").write_text(card)
    wheel = build_wheel(project_dir, destination)
    requirements = (source / "requirements.txt").read_text().rstrip() + f"\n./{wheel.name}\n"
    (destination / "requirements.txt").write_text(requirements)
    return destination


def prepare(model_dir, model_repo, dataset_dir=None, dataset_repo=None, space_repo=None, stage_dir=None,
            project_dir=None) -> Plan:
    plan = Plan(Path(model_dir), model_repo)
    check_model_folder(plan.model_dir)
    if dataset_dir:
        if not dataset_repo:
            raise PublishError("--dataset-dir needs --dataset-repo.")
        plan.dataset_dir, plan.dataset_repo = Path(dataset_dir), dataset_repo
        plan.dataset_files = [str(f) for f in built_dataset_files(plan.dataset_dir)]
    if space_repo:
        project = check_project_dir(Path(project_dir or Path.cwd()))
        stage = Path(stage_dir or tempfile.mkdtemp(prefix="codectrace-space-")) / "space"
        plan.space_dir, plan.space_repo = stage_space(project, stage, model_repo, dataset_repo), space_repo
    return plan


def upload(plan: Plan, private: bool = False, api=None) -> dict[str, str]:
    from huggingface_hub import HfApi

    from .hub import push_model_folder

    api = api or HfApi()
    urls = {"model": push_model_folder(plan.model_dir, plan.model_repo, private=private, api=api)}
    if plan.dataset_dir:
        urls["dataset"] = push_dataset_folder(plan.dataset_dir, plan.dataset_repo, private=private, api=api)
    if plan.space_dir:
        api.create_repo(plan.space_repo, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.add_space_variable(plan.space_repo, "CODECTRACE_MODEL", plan.model_repo)
        urls["space"] = str(api.upload_folder(folder_path=str(plan.space_dir), repo_id=plan.space_repo,
                                              repo_type="space", commit_message="Upload CodecTrace Space"))
    return urls


def add_publish_parser(sub) -> None:
    parser = sub.add_parser("publish", help="upload a model folder, a built dataset and the Space to the Hub",
                            description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--model-repo", required=True)
    parser.add_argument("--dataset-dir")
    parser.add_argument("--dataset-repo")
    parser.add_argument("--space-repo")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--stage-dir", help="prepare and check everything here; upload nothing")
    parser.add_argument("--project-dir", help="checkout of the codectrace repository that the Space and its wheel "
                                              "are built from (default: the current folder)")
    parser.set_defaults(func=_run_publish)


def _run_publish(args) -> int:
    plan = prepare(args.model_dir, args.model_repo, args.dataset_dir, args.dataset_repo, args.space_repo,
                   args.stage_dir, args.project_dir)
    if args.stage_dir:
        print(json.dumps({"model": str(plan.model_dir), "dataset": str(plan.dataset_dir or ""),
                          "space": str(plan.space_dir or "")}, indent=2))
        return 0
    for kind, url in upload(plan, private=args.private).items():
        print(f"{kind}: {url}")
    return 0
