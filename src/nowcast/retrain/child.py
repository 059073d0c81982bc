"""The training child: ``nowcast train --curriculum`` on the staged archive.

Contract
--------
- :func:`train_command` is the child's command line::

      python -m nowcast train --curriculum --data STAGED --out RUN_DIR
          --export CANDIDATE --cache CACHE --log-format json
          [--config FILE] [retrain.train_args ...]

  with the interpreter running this process, the configuration file this
  process loaded (environment overrides reach the child as its environment)
  and ``retrain.train_args`` last (epochs, threads, device, simulated storms;
  the options above are refused there by the configuration).
- :func:`run_training` starts it in this process's group (a stop signal to the
  group, or Ctrl-C, reaches it too; it inherits this process's niceness), its
  stdout and stderr appended to ``log``, and waits at most ``timeout_s`` (0: no
  limit). A child that ran past it is terminated (killed after 30 s). A child
  that exits non-zero, or ran out of time, raises
  :class:`~nowcast.errors.RetrainError` naming the exit status, the last line
  of its log and the log; an interrupt of this process stops the child first.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nowcast.errors import RetrainError

if TYPE_CHECKING:
    from nowcast.config import Settings


def train_command(
    settings: Settings, data: Path, out_dir: Path, export: Path, cache: Path
) -> list[str]:
    """The child's argv (see the module contract)."""
    cmd = [
        sys.executable,
        "-m",
        "nowcast",
        "train",
        "--curriculum",
        "--data",
        str(data),
        "--out",
        str(out_dir),
        "--export",
        str(export),
        "--cache",
        str(cache),
        "--log-format",
        "json",
    ]
    if settings.source is not None:
        cmd += ["--config", str(settings.source)]
    return cmd + list(settings.retrain.train_args)


def last_line(log: Path, limit: int = 300) -> str:
    """The last non-empty line of ``log`` (at most ``limit`` characters)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 8192))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:limit]
    return ""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_training(cmd: Sequence[str], log: Path, timeout_s: float) -> None:
    """Run the child to its end (see the module contract)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        try:
            proc = subprocess.Popen(
                list(cmd), stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            raise RetrainError(f"cannot start the training child: {exc}") from None
        try:
            rc = proc.wait(timeout_s if timeout_s > 0 else None)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise RetrainError(
                f"training ran past retrain.timeout_s = {timeout_s:g} s and was "
                f"stopped (log: {log})"
            ) from None
        except BaseException:
            _stop(proc)
            raise
    if rc != 0:
        raise RetrainError(
            f"training failed (exit status {rc}): {last_line(log) or 'no output'} "
            f"(log: {log})"
        )
