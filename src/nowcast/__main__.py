"""``python -m nowcast`` (and ``torchrun ... -m nowcast train``): the command line."""

import sys

from nowcast.cli import main

sys.exit(main())
