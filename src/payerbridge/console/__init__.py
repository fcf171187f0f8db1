"""The operator console (ADR 0035): server-rendered pages for the people who run
payerbridge, at ``/console``. An edge: it reads and acts through the same use cases and
ports as the API, given the platform; it never imports the store."""

from payerbridge.console.app import CONSOLE_PATH, build_console, install_console

__all__ = ["CONSOLE_PATH", "build_console", "install_console"]
