"""Every relative link in the README, the docs, the research record and the benchmark results leads to a file."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "research" / "README.md", ROOT / "benchmarks" / "RESULTS.md",
         *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_lead_to_files(page):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    missing = [link for link in links if not link.startswith("http") and not (page.parent / link).exists()]
    assert missing == []


@pytest.mark.parametrize("image", sorted(p for p in (ROOT / "docs").rglob("*") if p.suffix in (".png", ".jpg")),
                         ids=lambda image: str(image.relative_to(ROOT)))
def test_documentation_images_stay_under_300_kb(image):
    assert image.stat().st_size <= 300 * 1024
