"""nowcast: operational 3D radar nowcasting.

Subpackages, one pipeline stage each:

- :mod:`nowcast.radar`: read scans (the input contract), write forecasts (the TITAN
  contract), grid operations (pooling, upsampling).
- :mod:`nowcast.synthetic`: the 3D storm simulator.
- :mod:`nowcast.verification`: contingency scores, FSS, MAE.
- :mod:`nowcast.forecasters`: the forecaster interface, its registry and the classical
  forecasters (persistence, TITAN-style, optical flow).
- :mod:`nowcast.model`: ConvLSTM3D cells and networks.
- :mod:`nowcast.curriculum`: losses, phases, training.
- :mod:`nowcast.daemon`: the operational loop.
- :mod:`nowcast.monitor`: the Textual dashboard.
- :mod:`nowcast.store`: the SQLite metrics store.

Nothing here reads configuration or touches the disk at import time.
"""

__version__ = "0.1.0"
