"""``nowcast-monitor``: the operator's Textual dashboard (built under issue 6).

Until the dashboard lands this entry point says so and exits with status 1, so that
an operator who installs the package gets an honest answer rather than a traceback.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "nowcast-monitor: the dashboard is not built yet; "
        "use `nowcast inspect` and the daemon's logs meanwhile",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
