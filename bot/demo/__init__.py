"""``slabot demo``: the whole flow on this machine with local stand-ins, and its data."""
