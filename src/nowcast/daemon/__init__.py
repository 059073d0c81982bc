"""nowcast.daemon (see the package docstring of nowcast)."""
