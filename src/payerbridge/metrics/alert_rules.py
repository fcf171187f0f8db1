"""The shipped Prometheus rules (``deploy/prometheus/alerts.yml``) made this deployment's:
each alert's ``runbook_url`` pointed where its runbooks are.

The file in ``deploy/prometheus`` is the one source: its alerts link the project's pages
(``DEFAULT_RUNBOOK_BASE_URL/alert-<name>``), so it loads as it is, and its promtool tests
read it. ``render_rules`` rewrites those links, and nothing else, to a deployment's
(``alert_runbook_template``: ``PAYERBRIDGE_RUNBOOK_URL``, else
``PAYERBRIDGE_RUNBOOK_BASE_URL``, else the public base URL's ``/runbooks``), which
``payerbridge alerts rules`` writes out for Prometheus's ``rule_files:``. Every link is
absolute: Alertmanager's receivers (a chat message, a page) have no repository to
resolve a relative path against.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import payerbridge
from payerbridge.config import Settings
from payerbridge.errors import InvalidInput, Issue

__all__ = [
    "ALERT_PAGE",
    "DEFAULT_RUNBOOK_BASE_URL",
    "alert_runbook_template",
    "default_rules_file",
    "render_rules",
    "runbook_pages",
]

# The project's runbook pages: what the shipped rules link, and what the rendered ones
# link where no setting names this deployment's.
DEFAULT_RUNBOOK_BASE_URL = "https://payerbridge.dev/runbooks"
_CODE = "{code}"
# An alert's runbook page: ``alert-<name>`` (docs/runbooks/alert-<name>.md).
ALERT_PAGE = re.compile(r"^alert-[a-z0-9]+(?:-[a-z0-9]+)*$")
_RUNBOOK_LINE = re.compile(r"^(?P<lead>\s+runbook_url: )(?P<url>.*)$", re.MULTILINE)
_PLAIN = re.compile(r"^[A-Za-z0-9:/._~%?=&+@-]+$")  # a URL YAML takes unquoted


def alert_runbook_template(settings: Settings) -> str:
    """Where the alerts' ``runbook_url`` point, ``{code}`` for the alert's page: where
    every runbook link does (``Settings.runbook_template``), except that without a public
    base URL this process's own address is no address for whoever reads an alert: the
    project's pages are linked instead."""
    named = (settings.runbook_url, settings.runbook_base_url, settings.public_base_url)
    if all(setting is None for setting in named):
        return f"{DEFAULT_RUNBOOK_BASE_URL}/{_CODE}"
    return settings.runbook_template


def default_rules_file() -> Path:
    """``deploy/prometheus/alerts.yml`` of the source tree this package runs from (a
    checkout, or an editable install); with an installed wheel, name the release's
    file."""
    return Path(payerbridge.__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def runbook_pages(text: str) -> list[str]:
    """The runbook page each alert of the shipped rules links, in order; InvalidInput
    for a link that is not one of the project's alert pages."""
    pages, issues = [], []
    prefix = f"{DEFAULT_RUNBOOK_BASE_URL}/"
    for number, match in _numbered(text):
        url = match.group("url").strip()
        page = url.removeprefix(prefix) if url.startswith(prefix) else ""
        if not ALERT_PAGE.match(page):
            issues.append(Issue(f"line {number}: {url[:120]!r} is not {prefix}alert-<name>"))
        pages.append(page)
    if issues:
        raise InvalidInput("the rules' runbook_url are not the shipped ones", issues=issues)
    return pages


def render_rules(text: str, template: str) -> str:
    """The shipped rules ``text`` with each alert's ``runbook_url`` at ``template``
    (``{code}`` standing for the alert's page); everything else as it was."""
    if _CODE not in template:
        raise InvalidInput(f"a runbook address needs {_CODE} where the page goes")
    pages = iter(runbook_pages(text))

    def link(match: re.Match[str]) -> str:
        url = template.replace(_CODE, quote(next(pages), safe=""))
        return match.group("lead") + (url if _PLAIN.match(url) else json.dumps(url))

    return _RUNBOOK_LINE.sub(link, text)


def _numbered(text: str) -> list[tuple[int, re.Match[str]]]:
    return [
        (text.count("\n", 0, match.start()) + 1, match) for match in _RUNBOOK_LINE.finditer(text)
    ]
