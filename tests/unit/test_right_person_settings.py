"""The settings that name who may release a hold and break the glass (ADR 0046): counsel
are principals of a kind an edge authenticates, break-glass roles are console roles,
and config's copy of the roles (principals.py) is the console's."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from payerbridge.config import load_settings
from payerbridge.principals import CONSOLE_ROLES
from payerbridge.security.model import Role


def test_config_knows_the_console_roles() -> None:
    assert {role.value for role in Role} == CONSOLE_ROLES


def test_counsel_and_break_glass_roles_are_checked(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        hold_counsel="  console:legal   api:counsel-app cli:jo ",
        break_glass_roles="operator reviewer",
        break_glass_approval=True,
    )
    assert settings.hold_counsel.split() == ["console:legal", "api:counsel-app", "cli:jo"]
    assert settings.break_glass_approval
    for counsel in ("legal", "ldap:legal", "console:"):
        with pytest.raises(ValidationError, match="hold_counsel names principals"):
            load_settings(data_dir=tmp_path, hold_counsel=counsel)
    with pytest.raises(ValidationError, match="break_glass_roles names console roles"):
        load_settings(data_dir=tmp_path, break_glass_roles="operator admin")
