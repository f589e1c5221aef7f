"""One path for user errors: a ClickException with a message that says what to do.

DeployError (click.ClickException)
+-- ToolError      an external tool (chalice, cfn-lint) failed
+-- StackError     CloudFormation refused or rolled back
"""

from __future__ import annotations

import click


class DeployError(click.ClickException):
    exit_code = 2


class ToolError(DeployError):
    pass


class StackError(DeployError):
    pass
