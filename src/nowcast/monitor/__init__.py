"""nowcast.monitor (see the package docstring of nowcast)."""
