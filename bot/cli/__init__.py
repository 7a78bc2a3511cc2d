"""The ``slabot`` command line: :func:`main` parses and runs one command (:mod:`bot.cli.main`)."""

from bot.cli.main import main, run

__all__ = ["main", "run"]
