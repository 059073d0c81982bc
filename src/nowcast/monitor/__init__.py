"""nowcast.monitor: ``nowcast-monitor``, the forecaster's terminal dashboard (Textual).

It only reads (``status.json``, the metrics store through a read-only connection,
the forecast and scan files) and never imports torch or pysteps. The contract is in
:mod:`.app`'s docstring.

Modules
-------
- :mod:`.app`: :class:`~.app.MonitorApp` (layout, keys, workers) and ``main``.
- :mod:`.messages`: what the worker threads post to the screen.
- :mod:`.data`: the workspace and the loader of the daemon's health (no Textual).
- :mod:`.history`: loaders of skill scores and training curves (no Textual).
- :mod:`.forecasts`: the newest forecast set and the fields to draw (no Textual).
- :mod:`.status`: a tolerant reader of the daemon's ``status.json``.
- :mod:`.palette`, :mod:`.image`, :mod:`.plot`, :mod:`.fmt`: colours, pictures,
  charts and text (Rich only).
- Widgets, one a file with its ``.tcss`` beside it: :mod:`.status_line`,
  :mod:`.forecast_panel`, :mod:`.radar_view`, :mod:`.skill_panel`,
  :mod:`.chart_view`, :mod:`.training_panel`, :mod:`.health_panel`,
  :mod:`.help_screen`.
"""
