"""``chalice local`` for the local stack, with the process environment winning.

Run as ``python -m infra.local.api local --stage ... --port ...`` (any
``chalice`` arguments). ``chalice local`` copies the stage's
``environment_variables`` from ``.chalice/config.json`` into ``os.environ``
when it loads the app, over what the process was started with. The runner
has already put those variables in the environment, plus the overrides given
to ``LocalStack(env=...)``; here values already in the environment are kept,
so an override reaches the API as it reaches the bridge. It also answers
unknown routes as the deployed API Gateway does (``gateway.py``).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    from chalice.cli import cli
    from chalice.cli.factory import CLIFactory

    from infra.local import gateway

    gateway.install()

    load_app = CLIFactory.load_chalice_app

    def load_keeping_environment(self, environment_variables=None, *args, **kwargs):
        if environment_variables is not None:
            environment_variables = {name: os.environ.get(name, value) for name, value in environment_variables.items()}
        return load_app(self, environment_variables, *args, **kwargs)

    CLIFactory.load_chalice_app = load_keeping_environment
    # --autoreload re-runs sys.argv in a child: make that this module again.
    sys.argv = [sys.executable, "-m", "infra.local.api", *argv]
    return cli.main(args=argv, prog_name="chalice", obj={}, standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
