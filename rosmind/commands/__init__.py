"""Subcommands of the ``rosmind`` CLI; see ``rosmind.cli``."""
