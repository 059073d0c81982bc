"""One lock for every netCDF4 (HDF5) call nowcast makes in a process.

Contract
--------
- The HDF5 library under netCDF4 is not thread-safe, and netCDF4-python lets go
  of the GIL while HDF5 works: two threads inside it at once can crash the whole
  process. (The monitor's forecast panel did: two of its field-loading workers
  were inside ``read_scan`` at once, and the process died of a segmentation
  fault in a full test run, 2026-12-08.)
- :data:`HDF5_LOCK` (re-entrant) is held around every open, read, write and
  close nowcast makes through netCDF4: :func:`nowcast.radar.reader.read_scan`,
  the writer's in-memory file, and the verification's attribute reader. Holding
  it costs one thread's wait: a scan is read in tens of milliseconds.
- Other libraries reading files in a nowcast process (xarray, Py-ART: the tests'
  clients) take their own locks, not this one; none runs in a thread beside ours.
"""

from __future__ import annotations

import threading

__all__ = ["HDF5_LOCK"]

HDF5_LOCK = threading.RLock()
