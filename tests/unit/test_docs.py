"""The README and docs/ stay a path a newcomer can follow, and true to the code.

Every relative link in README.md and docs/**/*.md leads to a file (and to a heading, by
GitHub's slug rule, when it names one); the README stays a front door and the architecture
page one page; the ADR index lists every ADR; the HTTP API page names every route of the
app's OpenAPI description and nothing the app does not serve; the configuration page names
every setting of ``Settings`` and nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import FastAPI

import payerbridge.api.app as api_app
from payerbridge.bootstrap import Platform
from payerbridge.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]

README_MAX_LINES = 200
ARCHITECTURE_MAX_WORDS = 1200

_FENCE = re.compile(r"^```.*?^```", flags=re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", flags=re.MULTILINE)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _prose(text: str) -> str:
    """The page without fenced blocks: a `# comment` in a shell block is no heading."""
    return _FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped (hyphens
    and underscores kept), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings, repeats numbered as GitHub numbers them."""
    found: set[str] = set()
    for heading in _HEADING.findall(_prose(_text(path))):
        base = slug(heading)
        anchor, n = base, 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found.add(anchor)
    return found


def _links(path: Path) -> list[str]:
    prose = _INLINE_CODE.sub("", _prose(_text(path)))
    return [
        link
        for link in _LINK.findall(prose)
        if not re.match(r"[a-z][a-z0-9+.-]*:", link)  # http:, https:, mailto:
    ]


def broken_links(path: Path) -> list[str]:
    """The relative links of a page that lead nowhere, each with why."""
    broken = []
    for link in _links(path):
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        if not resolved.exists():
            broken.append(f"{link}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{link}: no heading #{anchor}")
    return broken


def test_the_slug_rule_is_githubs() -> None:
    assert slug("Answering from the plan's own systems") == "answering-from-the-plans-own-systems"
    assert slug("`PAYERBRIDGE_*` and the TOML file") == "payerbridge_-and-the-toml-file"
    assert slug("States, routes and retries") == "states-routes-and-retries"


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n", encoding="utf-8")
    page.write_text(
        "# Page\n\n[ok](other.md#a-heading) [gone](missing.md) [no anchor](other.md#nope)\n"
        "[self](#page) `[in code](nowhere.md)`\n\n```sh\n# not a heading\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["missing.md: no such file", "other.md#nope: no heading #nope"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert not broken_links(page), f"{page.relative_to(ROOT)}: {broken_links(page)}"


def test_the_readme_is_a_front_door() -> None:
    text = _text(README)
    assert len(text.splitlines()) < README_MAX_LINES
    assert "make run" in text and "make test" in text  # CI reads the test command here
    for page in ("docs/architecture.md", "docs/adr/README.md", "docs/runbooks/README.md"):
        assert f"]({page}" in text, f"the README does not link {page}"
    assert "](docs/benchmarks/" in text and "](docs/http-api.md" in text


def test_the_architecture_page_is_one_page() -> None:
    words = len(_text(DOCS / "architecture.md").split())
    assert words < ARCHITECTURE_MAX_WORDS, f"docs/architecture.md has {words} words"


def test_the_adr_index_lists_every_adr_and_nothing_else() -> None:
    adrs = DOCS / "adr"
    files = {p.name for p in adrs.glob("[0-9][0-9][0-9][0-9]-*.md")}
    lines = [line for line in _text(adrs / "README.md").splitlines() if line.startswith("- ")]
    listed = [m.group(1) for line in lines if (m := re.search(r"\]\(([^)#]+)\)", line))]
    assert len(listed) == len(lines), "each index line links its ADR"
    assert sorted(listed) == sorted(files), "the index and docs/adr/ differ"
    for line, name in zip(lines, listed, strict=True):
        assert line.startswith(f"- {name[:4]} ["), f"the line for {name} starts with its number"


# Routes the app serves that its OpenAPI description leaves out; the page may name them.
# The console's pages are a mounted application of their own, documented in
# docs/operations.md, so they are neither required here nor checked against the app.
_CONSOLE = "/console"
_METHOD = r"GET|POST|PUT|PATCH|DELETE"
_ROUTE = re.compile(rf"^((?:{_METHOD})(?:\\?\|(?:{_METHOD}))*) (/[^\s`?]*)")


def _normal(path: str) -> str:
    """A route template without its parameters' names: `{job_id}` and `[id]` are `{}`."""
    return re.sub(r"\{[^}]*\}|\[[^\]]*\]", "{}", path)


def _app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """The app as `payerbridge serve` builds it, on default settings (no environment or
    TOML file read): building the routes needs no database, and the console (a mounted
    application of its own) is left out."""
    monkeypatch.setattr(api_app, "install_console", lambda app, platform: None)
    platform = cast(Platform, SimpleNamespace(settings=Settings.model_construct()))
    return api_app.create_app(platform, run_workers=False)


def _served(routes: list[Any]) -> set[tuple[str, str]]:
    """Every (method, path) the routes serve, those left out of the description too. An
    included router is one route that holds its router's (FastAPI 0.165)."""
    served = set()
    for route in routes:
        if (included := getattr(route, "original_router", None)) is not None:
            served |= _served(included.routes)
        else:
            served |= {(method, route.path) for method in getattr(route, "methods", None) or ()}
    return served


def _documented_routes() -> set[tuple[str, str]]:
    page = _text(DOCS / "http-api.md")
    routes = set()
    for code in re.findall(r"`([^`\n]+)`", page):
        if match := _ROUTE.match(code.strip()):
            methods, path = match.groups()
            routes |= {(m, _normal(path)) for m in re.split(r"\\?\|", methods)}
    return routes


def test_the_http_api_page_lists_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch)
    described = {
        (method.upper(), _normal(path))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert len(described) > 50  # a description that lost its routers would pass vacuously
    missing = sorted(f"{m} {p}" for m, p in described - _documented_routes())
    assert not missing, f"docs/http-api.md does not list {missing}"


def test_the_http_api_page_names_only_routes_the_app_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served = {(method, _normal(path)) for method, path in _served(_app(monkeypatch).routes)}
    unknown = sorted(
        f"{m} {p}" for m, p in _documented_routes() - served if not p.startswith(_CONSOLE)
    )
    assert not unknown, f"docs/http-api.md lists routes the app does not serve: {unknown}"


# Variables the page may name that are not settings: the file the settings are read from.
_NOT_SETTINGS = {"PAYERBRIDGE_CONFIG_FILE"}


def test_the_configuration_page_lists_every_setting_and_nothing_else() -> None:
    page = _text(DOCS / "configuration.md")
    fields = {f"PAYERBRIDGE_{name.upper()}" for name in Settings.model_fields}
    rows = [line.split(" | ")[0] for line in page.splitlines() if line.startswith("| `")]
    in_rows = {name for row in rows for name in re.findall(r"PAYERBRIDGE_[A-Z0-9_]+", row)}
    named = set(re.findall(r"PAYERBRIDGE_[A-Z0-9_]*[A-Z0-9]", page))
    assert not fields - in_rows, f"docs/configuration.md has no row for {sorted(fields - in_rows)}"
    unknown = sorted(named - fields - _NOT_SETTINGS)
    assert not unknown, f"docs/configuration.md names what is no setting: {unknown}"
