"""The documentation: every page reachable from the README, every relative link resolving, and
the settings reference naming every option the code reads."""

import re
from dataclasses import fields
from pathlib import Path

import pytest

from django_jobs.beat.sync import KEYS as SCHEDULE_KEYS
from django_jobs.conf import JobsOptions
from django_jobs.tasks import EXTRA_OPTIONS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(path: Path) -> str:
    """The Markdown of ``path`` without code blocks and inline code (their brackets are code)."""
    return INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(path))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)  # http:, https:, mailto:
    ]


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of ``path``: lower case, punctuation dropped, spaces to dashes."""
    seen: dict[str, int] = {}
    found = set()
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_every_docs_page_is_linked_from_the_readme():
    # Given the README's links
    linked = {
        (ROOT / target.split("#")[0]).resolve() for target in relative_links(ROOT / "README.md")
    }
    # Then every page in docs/ is among them
    assert [p.name for p in PAGES if p.resolve() not in linked] == []


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    # Given every relative link of the page (outside code)
    broken = []
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page.resolve()
        # Then it stays inside the repository, names a file that exists, and its anchor is a
        # heading of that file
        if not dest.is_relative_to(ROOT) or not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_no_page_points_outside_the_repository(page):
    # Given every "../…" path the page mentions, in links or in code
    text = page.read_text(encoding="utf-8")
    outside = [
        path
        for path in re.findall(r"(?<![\w.])\.\./[\w./-]+", text)
        if not (page.parent / path).resolve().is_relative_to(ROOT)
        or not (page.parent / path).exists()
    ]
    # Then each names a file of the repository (a reader has nothing outside it)
    assert outside == []


def test_the_settings_reference_names_every_option():
    # Given the settings page
    text = (DOCS / "settings.md").read_text(encoding="utf-8")
    names = [f.name for f in fields(JobsOptions)] + list(EXTRA_OPTIONS) + list(SCHEDULE_KEYS)
    # Then every backend option, task option and JOBS_SCHEDULES key is named in it
    assert [name for name in names if f"`{name}`" not in text] == []
    assert "`JOBS_SCHEDULES`" in text and "`TASKS`" in text


def test_the_settings_reference_lists_every_check_id():
    # Given every system check id the app can emit
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "django_jobs").rglob("*.py"))
    emitted = set(re.findall(r"\bid=\"(django_jobs\.[EW]\d+)\"", source))
    text = (DOCS / "settings.md").read_text(encoding="utf-8")
    # Then the settings page's table has a row for each
    assert sorted(i for i in emitted if f"`{i}`" not in text) == []
