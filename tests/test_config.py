"""Configuration: defaults, config.toml in step with them, overrides, clear errors."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO
from nowcast.config import Settings, load_config
from nowcast.errors import ConfigError


def _flatten(data, prefix=""):
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def test_repository_config_matches_defaults():
    """config.toml lists every key with exactly the built-in default; a key unset
    by default (TOML has no null) is there as a commented-out example."""
    text = (REPO / "config.toml").read_text()
    shipped = _flatten(tomllib.loads(text))
    defaults = _flatten(Settings().model_dump(mode="json", exclude={"source"}))
    unset = sorted(k for k, v in defaults.items() if v is None)
    assert unset == ["radar.site_latitude", "radar.site_longitude"]
    for key in unset:
        assert f"# {key.split('.')[-1]} = " in text, key
        del defaults[key]
    assert sorted(shipped) == sorted(defaults)
    for key, value in defaults.items():
        assert shipped[key] == value, key


def test_defaults_follow_the_training_strategy():
    s = load_config(None, environ={})
    assert (s.grid.input_frames, s.grid.output_frames, s.grid.pool_factor) == (8, 7, 2)
    p1, p2, p3 = s.curriculum.phase1, s.curriculum.phase2, s.curriculum.phase3
    assert (p1.first_epoch, p1.last_epoch, p1.lr) == (0, 25, 1e-3)
    assert (p1.high_penalty_weight, p1.ssim_weight) == (100, 0.1)
    assert (p2.first_epoch, p2.last_epoch, p2.lr, p2.scheduler) == (26, 75, 1e-4, "plateau")
    assert (p2.plateau_patience, p2.high_penalty_weight, p2.ssim_weight) == (4, 50, 20)
    assert (p3.first_epoch, p3.lr, p3.scheduler, p3.grad_clip) == (76, 1e-5, "cosine", 0.1)
    assert (p3.high_penalty_weight, p3.ssim_weight) == (25, 30)
    assert s.curriculum.high_threshold_dbz == 40
    assert s.verification.thresholds == [20, 35, 45]


def test_relative_paths_resolve_against_the_file(tmp_path):
    cfg = tmp_path / "site.toml"
    cfg.write_text('[paths]\ninput_dir = "scans"\noutput_dir = "/abs/out"\n')
    s = load_config(cfg, environ={})
    assert s.paths.input_dir == tmp_path / "scans"
    assert s.paths.output_dir == Path("/abs/out")
    assert s.source == cfg


def test_environment_overrides(tmp_path):
    env = {
        "NOWCAST_DAEMON__INPUT_DIR": "ignored-not-a-key",
        "NOWCAST_PATHS__INPUT_DIR": str(tmp_path),
        "NOWCAST_CURRICULUM__PHASE2__SSIM_WEIGHT": "30",
        "NOWCAST_VERIFICATION__THRESHOLDS": "[30, 40]",
        "NOWCAST_DAEMON__POLLING": "true",
        "OTHER": "x",
    }
    with pytest.raises(ConfigError, match="daemon.input_dir: unknown key"):
        load_config(None, environ=env)
    del env["NOWCAST_DAEMON__INPUT_DIR"]
    s = load_config(None, environ=env)
    assert s.paths.input_dir == tmp_path
    assert s.curriculum.phase2.ssim_weight == 30
    assert s.curriculum.phase1.ssim_weight == 0.1
    assert s.verification.thresholds == [30, 40]
    assert s.daemon.polling is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\npool_factor = 'two'\n", "grid.pool_factor: Input should be a valid integer"),
        ("[daemon]\nbogus = 1\n", "daemon.bogus: unknown key"),
        ("[curriculum.phase2]\nssim_weight = -1\n", "curriculum.phase2.ssim_weight:"),
        ("[output]\nlayout = 'mdv'\n", "output.layout:"),
        ("[curriculum.phase1]\nlast_epoch = -3\n", "curriculum.phase1.last_epoch"),
        ("[grid\n", "not valid TOML"),
        (
            "[retrain]\ntrain_args = ['--epochs', '1', '--out', 'x']\n",
            "retrain.train_args: --out is set by the retrainer",
        ),
        ("[retrain]\nmisfire_grace_s = 0\n", "retrain.misfire_grace_s:"),
    ],
)
def test_errors_name_the_key(tmp_path, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(cfg, environ={})


def test_settings_are_frozen():
    s = load_config(None, environ={})
    with pytest.raises(Exception):
        s.grid.pool_factor = 4  # type: ignore[misc]


def test_require_dirs(tmp_path):
    s = load_config(None, environ={"NOWCAST_PATHS__INPUT_DIR": str(tmp_path / "no")})
    with pytest.raises(ConfigError, match="paths.input_dir: directory .* does not exist"):
        s.require_dirs("input_dir")
    s.require_dirs("input_dir", create=True)
    assert (tmp_path / "no").is_dir()


def test_cli_exit_status_78_and_one_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[daemon]\nquiet_s = 'soon'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "nowcast.cli", "config", "--config", str(cfg)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "daemon.quiet_s" in lines[0] and str(cfg) in lines[0]


def test_cli_missing_directory_is_78(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nowcast.cli", "config", "--check-dirs"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "NOWCAST_PATHS__INPUT_DIR": str(tmp_path / "x")},
    )
    assert proc.returncode == 78
    assert "paths.input_dir" in proc.stderr
