"""Subcommands of ``nowcast``: one module each, see :mod:`nowcast.cli`."""
