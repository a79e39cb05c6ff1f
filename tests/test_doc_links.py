"""Every relative link in the README and the reference pages resolves: the file exists and
an ``#anchor`` names a heading of it (GitHub's rules). Sections move between the README
and ``docs/``; this is what catches a link left pointing at where a section used to be."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "deploy" / "helm" / "tally" / "README.md",
    *sorted((REPO / "terraform").glob("**/README.md")),
]
FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); the text may hold one level of brackets.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a link or heading there is only an example)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text lowercased, punctuation dropped
    (word characters, hyphens and spaces stay), each space a hyphen."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text).replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 … suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    """Every link target in the prose of a markdown file, code spans left out."""
    targets = []
    for line in prose_lines(path.read_text()):
        targets += LINK.findall(CODE_SPAN.sub("", line))
    return targets


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """The links of ``path`` that name a file that does not exist or a heading it lacks."""
    broken = []
    for target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(root)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: {dest.relative_to(root)} has no heading #{anchor}")
    return broken


def test_github_anchor_rules() -> None:
    assert slug("OAuth 2.0 client credentials") == "oauth-20-client-credentials"
    assert slug("Tenants' own identity providers") == "tenants-own-identity-providers"
    assert slug("Retries: `Idempotency-Key`") == "retries-idempotency-key"
    assert slug("CI (`.github/workflows/ci.yml`)") == "ci-githubworkflowsciyml"
    assert slug("What bounds the hot path now (2026-12-01, quiet machine)") == (
        "what-bounds-the-hot-path-now-2026-12-01-quiet-machine"
    )
    assert slug("A — B") == "a--b"


def test_a_link_to_a_missing_file_or_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## The edge\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#the-edge) [ok](#page) `[not a link](nowhere.md)`\n"
        "[gone](other.md#metrics) [gone](missing.md) ![gone](images/x.png) [gone](#nothing)\n"
        "```\n[in a code block](nowhere.md)\n```\n"
    )
    assert [b.split(":")[0] for b in broken_links(page, root=tmp_path)] == [
        "other.md#metrics",
        "missing.md",
        "images/x.png",
        "#nothing",
    ]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []
