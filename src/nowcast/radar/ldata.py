"""``_latest_data_info``: the trigger files LROSE's LdataInfo writes, and TITAN reads.

Contract
--------
:func:`write_latest_data_info` rewrites, atomically, in the data set's top folder:

- ``_latest_data_info.xml``: root ``latest_data_info`` with ``unix_time``, ``year``,
  ``month``, ``day``, ``hour``, ``min``, ``sec`` (for a forecast: the generation time,
  the lead goes in ``forecast_lead_secs``), ``rel_data_path``, ``file_ext``,
  ``data_type``, ``user_info1`` (the relative path), ``user_info2`` (the file name),
  ``is_forecast``, ``forecast_lead_secs``, ``writer``, ``max_time``,
  ``prev_mod_time``;
- ``_latest_data_info``: the plain form: a line with the unix time and the date and
  time, then the file extension, the two user-info lines, ``1``/``0`` for forecast,
  and the lead in seconds for a forecast.

LdataInfo readers prefer the FMQ files ``_latest_data_info.stat`` / ``.buf`` when they
exist, and would then ignore the XML we write; stale ones are removed with a warning.
:func:`read_latest_data_info` parses the XML back (for tests and the monitor).
"""

from __future__ import annotations

import calendar
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import structlog

from nowcast.fsutil import write_text_atomic

log = structlog.get_logger(__name__)

XML_NAME = "_latest_data_info.xml"
ASCII_NAME = "_latest_data_info"
FMQ_NAMES = ("_latest_data_info.stat", "_latest_data_info.buf")


@dataclass(frozen=True)
class LatestDataInfo:
    """One data-set trigger record."""

    time: datetime
    rel_data_path: str
    is_forecast: bool = False
    lead_s: int = 0
    file_ext: str = "nc"
    data_type: str = "nc"
    writer: str = "nowcast"

    @property
    def unix_time(self) -> int:
        return calendar.timegm(self.time.astimezone(timezone.utc).timetuple())


def _xml(info: LatestDataInfo, prev_mod_time: int) -> str:
    t = info.time.astimezone(timezone.utc)
    fields = [
        ("unix_time", str(info.unix_time)),
        ("year", f"{t.year:04d}"),
        ("month", f"{t.month:02d}"),
        ("day", f"{t.day:02d}"),
        ("hour", f"{t.hour:02d}"),
        ("min", f"{t.minute:02d}"),
        ("sec", f"{t.second:02d}"),
        ("rel_data_path", info.rel_data_path),
        ("file_ext", info.file_ext),
        ("data_type", info.data_type),
        ("user_info1", info.rel_data_path),
        ("user_info2", Path(info.rel_data_path).name),
        ("is_forecast", "true" if info.is_forecast else "false"),
        ("forecast_lead_secs", str(info.lead_s if info.is_forecast else 0)),
        ("writer", info.writer),
        ("max_time", str(info.unix_time)),
        ("prev_mod_time", str(prev_mod_time)),
    ]
    body = "".join(f"  <{k}>{_escape(v)}</{k}>\n" for k, v in fields)
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" standalone="yes" ?>\n'
        f"<latest_data_info>\n{body}</latest_data_info>\n"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ascii(info: LatestDataInfo) -> str:
    t = info.time.astimezone(timezone.utc)
    lines = [
        f"{info.unix_time} {t.year:04d} {t.month:02d} {t.day:02d} "
        f"{t.hour:02d} {t.minute:02d} {t.second:02d}",
        info.file_ext,
        info.rel_data_path,
        Path(info.rel_data_path).name,
        "1" if info.is_forecast else "0",
    ]
    if info.is_forecast:
        lines.append(str(info.lead_s))
    return "\n".join(lines) + "\n"


def write_latest_data_info(directory: str | Path, info: LatestDataInfo) -> None:
    """Rewrite both trigger files in ``directory`` atomically (see module doc)."""
    directory = Path(directory)
    prev = 0
    xml_path = directory / XML_NAME
    if xml_path.exists():
        prev = int(xml_path.stat().st_mtime)
    for name in FMQ_NAMES:
        stale = directory / name
        if stale.exists():
            log.warning(
                "removing stale LdataInfo FMQ file: readers would ignore the XML",
                path=str(stale),
            )
            stale.unlink(missing_ok=True)
    write_text_atomic(xml_path, _xml(info, prev))
    write_text_atomic(directory / ASCII_NAME, _ascii(info))


def read_latest_data_info(directory: str | Path) -> LatestDataInfo:
    """Parse ``_latest_data_info.xml`` in ``directory``."""
    root = ET.parse(Path(directory) / XML_NAME).getroot()
    if root.tag != "latest_data_info":
        raise ValueError(f"{directory}/{XML_NAME}: root is {root.tag!r}")

    def text(tag: str) -> str:
        node = root.find(tag)
        return "" if node is None or node.text is None else node.text

    return LatestDataInfo(
        time=datetime.fromtimestamp(int(text("unix_time")), tz=timezone.utc),
        rel_data_path=text("rel_data_path"),
        is_forecast=text("is_forecast") == "true",
        lead_s=int(text("forecast_lead_secs") or 0),
        file_ext=text("file_ext"),
        data_type=text("data_type"),
        writer=text("writer"),
    )
