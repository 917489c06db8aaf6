"""The ``artifact-store`` command line: every command, and the HTTP client they use.

One module per command group, each command a plain function; this module
registers each one exactly once. ``common`` holds what they share (``fail``,
the common options, settings from flags, output helpers); ``client``,
``client_auth`` and ``credentials`` are the HTTP client of the user commands.
Nothing below the CLI imports this package.

    native.py     push, pull, ls, show, usage
    login.py      login, logout
    serve.py      serve
    verify.py     verify
    gc.py         gc
    admin.py      admin rebuild-views, copy-storage (and the auth groups below)
    auth.py       admin user|policy|tenant|key …, admin audit
    events.py     events tail
    retention.py  retention plan|apply|extend
    holds.py      hold place|release|ls
"""

from __future__ import annotations

import typer

from registry.cli import gc, login, native, serve, verify
from registry.cli.admin import admin_app
from registry.cli.events import events_app
from registry.cli.holds import hold_app
from registry.cli.retention import retention_app

__all__ = ["app", "main"]

app = typer.Typer(help="artifact-store: an OCI-distribution-first registry.", no_args_is_help=True)

for command in (
    native.push,
    native.pull,
    native.ls,
    native.show,
    native.usage,
    login.login,
    login.logout,
    serve.serve,
    verify.verify,
    gc.gc,
):
    app.command()(command)
app.add_typer(admin_app, name="admin")
app.add_typer(events_app, name="events")
app.add_typer(retention_app, name="retention")
app.add_typer(hold_app, name="hold")


def main() -> None:
    app(prog_name="artifact-store")


if __name__ == "__main__":
    main()
