"""The front page and the docs pages: length, links, wording, licence files."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAPER_URL = "https://arxiv.org/abs/1905.12659"

# Lab-notebook wording that has no place in documentation or code.
NOTEBOOK_PHRASES = (
    "this session",
    "loaded machine",
    "was re-run",
    "before the change",
    "earlier version",
    "what was wrong",
    "reading it honestly",
    "needs a full re-run",
    "could not be checked",
    "not reachable here",
)

# Markdown links and images: [text](target) and ![alt](target).
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_pages():
    pages = [README, ROOT / "CONTRIBUTING.md"] + sorted((ROOT / "docs").glob("*.md"))
    return [p for p in pages if p.exists()]


def _relative_links(page):
    text = page.read_text(encoding="utf-8")
    # Code spans and fenced blocks hold commands and code, not links.
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, mailto:, or an anchor on the same page
        yield target


def _words(text):
    return len(text.split())


def test_readme_is_at_most_250_lines_and_2000_words():
    text = README.read_text(encoding="utf-8")
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    assert lines <= 250, f"README.md has {lines} lines (at most 250)"
    assert _words(text) <= 2000, f"README.md has {_words(text)} words (at most 2,000)"


def test_readme_links_the_paper():
    assert PAPER_URL in README.read_text(encoding="utf-8")


def test_readme_keeps_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "pip install -e . && python examples/mixture_of_gaussians.py" in text
    assert 'pip install -e ".[test]" && python -m pytest' in text


@pytest.mark.parametrize("page", _markdown_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    targets = list(_relative_links(page))
    missing = [t for t in targets
               if not (page.parent / t.split("#", 1)[0]).resolve().exists()]
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files {missing}"


def test_link_checker_sees_links():
    # The check above must not pass by finding nothing.
    assert "docs/results.md" in list(_relative_links(README))
    assert set(_relative_links(README)) >= {"LICENSE", "CONTRIBUTING.md"}


def _text_files():
    yield README
    for folder, suffixes in (("docs", {".md"}), ("sig_keras", {".py"}),
                             ("examples", {".py"})):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in suffixes:
                yield path


def test_no_notebook_phrases():
    found = []
    for path in _text_files():
        text = path.read_text(encoding="utf-8").lower()
        found += [f"{path.relative_to(ROOT)}: {phrase!r}"
                  for phrase in NOTEBOOK_PHRASES if phrase in text]
    assert not found, "notebook phrases: " + "; ".join(found)


def test_license_and_citation_exist():
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0" in license_text
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert "cff-version: 1.2.0" in citation
    assert "Semi-Implicit Generative Model" in citation and "1905.12659" in citation

