"""Subcommands of ``python -m labhelpers``; each module is discovered automatically."""
