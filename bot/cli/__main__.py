"""``python -m bot.cli``: the same as the ``slabot`` command."""

from bot.cli.main import run

run()
