"""The command line: help for every subcommand, inspect, logging format."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import RADAR_CASES
from nowcast.cli import build_parser, main


def _run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "nowcast.cli", *args],
        capture_output=True, text=True, timeout=300, **kw,
    )


def test_help_lists_every_subcommand_with_a_line():
    proc = _run("--help")
    assert proc.returncode == 0
    _, commands = build_parser()
    assert "inspect" in commands and "config" in commands
    for name, module in commands.items():
        assert name in proc.stdout
        assert module.HELP and "\n" not in module.HELP


def test_each_subcommand_has_help(capsys):
    _, commands = build_parser()
    for name in commands:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "--config" in out, name


def test_inspect_accepts_good_and_rejects_truncated(fmi_files, tmp_path, capsys):
    bad = tmp_path / "ncf_20160928_150000.nc"
    data = fmi_files[0].read_bytes()
    bad.write_bytes(data[:4096])
    status = main(["inspect", str(fmi_files[0]), str(bad)])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[0].startswith(f"OK {fmi_files[0]}")
    assert out[1].startswith(f"REJECTED {bad}: ") and "truncated" in out[1]
    assert out[-1] == "1 accepted, 1 rejected"


def test_inspect_json(fmi_files, capsys):
    assert main(["inspect", "--json", str(fmi_files[0])]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["ok"] and record["shape"] == [1, 500, 500]
    assert record["time"] == "2016-09-28T14:45:00+00:00"


@pytest.mark.skipif(not RADAR_CASES.is_dir(), reason="shared radar cases missing")
def test_inspect_all_real_cases_as_a_subprocess(tmp_path):
    files = sorted(str(p) for p in RADAR_CASES.glob("*/*/*.nc"))
    proc = _run("inspect", *files)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "160 accepted, 0 rejected"
    shutil.copy(files[0], tmp_path / "copy.nc")
    (tmp_path / "copy.nc").write_bytes((tmp_path / "copy.nc").read_bytes()[:10000])
    proc = _run("inspect", str(tmp_path / "copy.nc"))
    assert proc.returncode == 1
    assert "REJECTED" in proc.stdout and "truncated" in proc.stdout


def test_logs_are_json_lines_when_not_a_terminal():
    code = (
        "from nowcast.logging import configure_logging; import structlog, sys;"
        "configure_logging(stream=sys.stdout);"
        "structlog.get_logger('t').info('scan ingested', path='/x.nc', n=3)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    record = json.loads(proc.stdout.strip())
    assert record["event"] == "scan ingested"
    assert record["path"] == "/x.nc" and record["level"] == "info"
    assert "timestamp" in record
