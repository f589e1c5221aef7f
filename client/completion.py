"""``squeezer completion bash|zsh|fish``: print the shell's completion script.

Click's own shell completion (:mod:`click.shell_completion`) does the work:
the script calls ``squeezer`` back with ``_SQUEEZER_COMPLETE=<shell>_complete``
set, and Click answers with the candidates instead of running a command.
This command only prints the script, so users need not know that variable.
"""

from __future__ import annotations

import click

PROG_NAME = "squeezer"  # the console script of pyproject.toml's [project.scripts]
COMPLETE_VAR = "_SQUEEZER_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("shell", metavar="SHELL", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash 4.4+, zsh or fish).

    \b
    Examples:
      eval "$(squeezer completion bash)"        # in ~/.bashrc
      eval "$(squeezer completion zsh)"         # in ~/.zshrc, after compinit
      squeezer completion fish > ~/.config/fish/completions/squeezer.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - the Choice above lists only shells Click knows
        raise click.UsageError(f"no completion for {shell}")
    root = ctx.find_root().command
    click.echo(cls(root, {}, PROG_NAME, COMPLETE_VAR).source())
