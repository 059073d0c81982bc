"""nowcast: operational 3D radar nowcasting.

Subpackages, one pipeline stage each:

- :mod:`nowcast.radar`: read scans (the input contract), write forecasts (the TITAN
  contract), grid operations (pooling, upsampling).
- :mod:`nowcast.synthetic`: the 3D storm simulator.
- :mod:`nowcast.verification`: contingency scores, FSS, MAE.
- :mod:`nowcast.forecasters`: the forecaster interface, its registry and every
  forecaster (persistence, TITAN-style, pysteps' methods, the model forecaster
  with its optical-flow and storm-tracked priors, the fallback).
- :mod:`nowcast.pipeline`: forecast a set, write it for TITAN.
- :mod:`nowcast.model`: ConvLSTM3D cells and networks, their checkpoint file.
- :mod:`nowcast.curriculum`: losses, phases, training.
- :mod:`nowcast.daemon`: the operational loop; :mod:`nowcast.retrain`: the
  nightly retraining.
- :mod:`nowcast.monitor`: the Textual dashboard.
- :mod:`nowcast.store`: the SQLite metrics store.

Nothing here reads configuration or touches the disk at import time.
"""

__version__ = "0.1.0"
