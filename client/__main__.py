"""``python -m client`` runs the ``squeezer`` command."""

from client.cli import main

main()
