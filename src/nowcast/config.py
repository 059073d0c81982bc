"""Configuration: ``config.toml`` loaded once into validated, frozen objects.

Contract
--------
- Every setting and its default lives here, in the pydantic models below; the
  top-level ``config.toml`` of the repository lists the same keys with comments (a
  test keeps the two equal).
- :func:`load_config` reads a TOML file (or none: all defaults), applies environment
  overrides, validates, and returns a frozen :class:`Settings`. Nothing is read at
  import time.
- Environment variables ``NOWCAST_<SECTION>__<KEY>[__<SUBKEY>]=value`` override keys,
  e.g. ``NOWCAST_DAEMON__INPUT_DIR=/data/radar``. Values are parsed as TOML literals
  when they parse (``3``, ``true``, ``[20, 35]``), else taken as strings.
- Relative paths in ``[paths]`` are resolved against the directory of the config file
  (against the working directory when there is no file), so a workspace's
  ``config.toml`` can say ``input_dir = "scans"``.
- Any problem raises :class:`~nowcast.errors.ConfigError` with one line that names
  the key: ``curriculum.phase2.ssim_weight: must be >= 0 (got -1)``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nowcast.errors import ConfigError

ENV_PREFIX = "NOWCAST_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class PathsConfig(_Section):
    """Where things live. Relative paths are taken from the config file's folder."""

    input_dir: Path = Path("var/scans")
    output_dir: Path = Path("var/titan/nowcast")
    state_dir: Path = Path("var/state")
    archive_dir: Path = Path("var/archive")
    rejected_dir: Path = Path("var/rejected")
    checkpoints_dir: Path = Path("checkpoints")
    store: Path = Path("var/state/nowcast.sqlite")
    status_file: Path = Path("var/state/status.json")
    production_model: Path = Path("models/demo3d.pt")


class RadarConfig(_Section):
    """How scans are read (the input contract)."""

    reflectivity_name: str = ""
    dbz_floor: float = 0.0
    dbz_max: float = 95.0
    expected_levels: int = Field(0, ge=0)
    expected_ny: int = Field(0, ge=0)
    expected_nx: int = Field(0, ge=0)
    #: the radar site, written as the forecasts' origin (both or neither; when
    #: unset, the scans' own origin or the centre of their projected grid)
    site_latitude: float | None = Field(None, ge=-90, le=90)
    site_longitude: float | None = Field(None, ge=-180, le=360)
    site_altitude_m: float = 0.0

    @model_validator(mode="after")
    def _site_whole(self) -> "RadarConfig":
        if (self.site_latitude is None) != (self.site_longitude is None):
            raise ValueError(
                "site_latitude and site_longitude are set together or not at all"
            )
        return self


class GridConfig(_Section):
    """The model grid and the time step between scans."""

    pool_factor: int = Field(2, ge=1)
    interval_s: int = Field(300, gt=0)
    input_frames: int = Field(8, ge=2)
    output_frames: int = Field(7, ge=1)


class OutputConfig(_Section):
    """How forecasts are written for TITAN."""

    layout: Literal["forecast", "valid_time"] = "forecast"
    field_name: str = "DBZ"
    complevel: int = Field(1, ge=0, le=9)
    write_motion: bool = False
    writer_name: str = "nowcast"
    data_type: str = "nc"
    upsample: bool = True


class DaemonConfig(_Section):
    """The operational loop (``nowcast run``)."""

    pattern: str = "*.nc"
    polling: bool = False
    quiet_s: float = Field(2.0, ge=0)
    reconcile_interval_s: float = Field(180.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    #: Prometheus metrics as a node-exporter textfile under state_dir ("" = none)
    metrics_file: str = "nowcast.prom"
    #: and served on 127.0.0.1 at this port (0 = not served)
    metrics_port: int = Field(0, ge=0, le=65535)
    max_gap_factor: float = Field(1.5, gt=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fallback: str = "extrapolation"
    verify_baselines: list[str] = ["persistence", "titan"]
    archive: Literal["link", "copy", "off"] = "link"
    archive_keep_days: float = Field(30.0, ge=0)
    archive_max_gb: float = Field(50.0, ge=0)
    retry_interval_s: float = Field(10.0, ge=0)
    observer_restarts: int = Field(3, ge=0)
    watchdog_interval_s: float = Field(30.0, gt=0)
    #: a scan time further ahead of the wall clock is rejected (a clock error)
    max_future_s: float = Field(600.0, ge=0)
    #: a file that does not read is retried until it has been still this long
    reject_after_s: float = Field(60.0, ge=0)

    @field_validator("fallback")
    @classmethod
    def _known_fallback(cls, value: str) -> str:
        from nowcast.forecasters.interface import REGISTRY

        names = sorted(n for n in REGISTRY if n != "model")
        if value not in names:
            raise ValueError(
                f"unknown forecaster {value!r}; the fallback is one of "
                f"{', '.join(names)}"
            )
        return value

    @field_validator("verify_baselines")
    @classmethod
    def _known_baselines(cls, value: list[str]) -> list[str]:
        from nowcast.forecasters.interface import REGISTRY

        names = sorted(n for n in REGISTRY if n != "model")
        unknown = [v for v in value if v not in names]
        if unknown:
            raise ValueError(
                f"unknown forecaster {unknown[0]!r}; baselines are among "
                f"{', '.join(names)}"
            )
        return value


class CellPriorConfig(_Section):
    """The advection head's storm-tracked motion prior (forecasters.storm_prior)."""

    enabled: bool = True
    min_scans: int = Field(2, ge=2)
    clear_px: float = Field(2.0, ge=0)
    fit_px: float = Field(0.2, ge=0)
    dilate_px: int = Field(1, ge=0)
    ring_px: int = Field(3, ge=1)
    cap_dbz: float = 30.0


class ModelConfig(_Section):
    """ConvLSTM3D Enhanced: the network's shape (passed as explicit arguments)."""

    head: Literal["advection", "plain"] = "advection"
    hidden_channels: list[int] = [32, 32]
    kernel_size: list[int] = [3, 3, 3]
    stem_channels: int = Field(16, ge=1)
    stem_strides: list[list[int]] = [[1, 2, 2], [1, 2, 2]]
    groups: int = Field(4, ge=1)
    use_flow_input: bool = True
    frame: Literal["eulerian", "lagrangian"] = "eulerian"
    dbz_min: float = 0.0
    dbz_max: float = 70.0
    cell_prior: CellPriorConfig = CellPriorConfig()
    network: bool = True  # false: forecast with the prior alone (what the net adds)
    smoothing: bool = True  # false: ignore the checkpoint's fitted lead smoothing
    trend: bool = True  # false: ignore the checkpoint's fitted Lagrangian trend


class PhaseConfig(_Section):
    """One phase of the curriculum (numbers from the training strategy)."""

    first_epoch: int = Field(ge=0)
    last_epoch: int = Field(ge=0)
    lr: float = Field(gt=0)
    warmup_epochs: int = Field(0, ge=0)
    scheduler: Literal["constant", "plateau", "cosine"] = "constant"
    plateau_patience: int = Field(4, ge=0)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    high_penalty_weight: float = Field(ge=0)
    ssim_weight: float = Field(ge=0)
    grad_clip: float = Field(0.0, ge=0)
    settle_patience: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _epochs_ordered(self) -> "PhaseConfig":
        if self.last_epoch < self.first_epoch:
            raise ValueError(
                f"last_epoch ({self.last_epoch}) is before first_epoch "
                f"({self.first_epoch})"
            )
        return self


class CurriculumConfig(_Section):
    """Three-phase training: data, losses and the phases."""

    data_dirs: list[Path] = []
    synthetic_per_epoch: int = Field(64, ge=0)
    sequences: int = Field(2000, ge=1)
    batch_size: int = Field(16, ge=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    augment: bool = True
    # unit range: every error is <= 1, so a delta of 1 would make Huber half the MSE
    huber_delta: float = Field(0.1, gt=0)
    high_threshold_dbz: float = 40.0
    area_ratio_bound: float = Field(1.2, gt=1)
    area_ratio_ssim: float = Field(30.0, ge=0)
    motion_loss_weight: float = Field(0.0, ge=0)
    event_loss_weight: float = Field(0.0, ge=0)
    event_thresholds_dbz: list[float] = Field(default_factory=lambda: [20.0, 35.0])
    event_width_db: float = Field(2.0, gt=0)
    quantile_loss_weight: float = Field(0.0, ge=0)
    quantile_tau: list[float] = Field(
        default_factory=lambda: [0.6, 0.65, 0.68, 0.71, 0.73, 0.75, 0.77],
        min_length=1,
    )
    quantile_echo_dbz: float = 5.0
    quantile_core_dbz: float = 30.0
    quantile_core_weight: float = Field(0.0, ge=0)
    residual_lr_scale: float = Field(0.01, gt=0)
    train_motion: bool = True
    select_by: Literal["csi35", "csi20_35"] = "csi35"
    storm_prior: bool = False
    num_workers: int = Field(0, ge=0)
    bf16: bool = True
    compile: bool = False
    checkpoint_activations: bool = False
    channels_last: bool = True
    seed: int = 0

    @field_validator("quantile_tau")
    @classmethod
    def _quantiles(cls, v: list[float]) -> list[float]:
        bad = [t for t in v if not 0.0 < t < 1.0]
        if bad:
            raise ValueError(f"every quantile must lie between 0 and 1, got {bad}")
        return v

    phase1: PhaseConfig = PhaseConfig(
        first_epoch=0,
        last_epoch=25,
        lr=1e-3,
        warmup_epochs=2,
        scheduler="constant",
        high_penalty_weight=100.0,
        ssim_weight=0.1,
        settle_patience=5,
    )
    phase2: PhaseConfig = PhaseConfig(
        first_epoch=26,
        last_epoch=75,
        lr=1e-4,
        scheduler="plateau",
        plateau_patience=4,
        high_penalty_weight=50.0,
        ssim_weight=20.0,
    )
    phase3: PhaseConfig = PhaseConfig(
        first_epoch=76,
        last_epoch=100,
        lr=1e-5,
        scheduler="cosine",
        high_penalty_weight=25.0,
        ssim_weight=30.0,
        grad_clip=0.1,
    )


#: ``nowcast train`` options the retrainer sets itself (not in ``train_args``).
RETRAIN_OWNS = (
    "--curriculum",
    "--phase",
    "--data",
    "--out",
    "--export",
    "--cache",
    "--config",
    "--resume-from",
)


class RetrainConfig(_Section):
    """Nightly retraining and promotion (see :mod:`nowcast.retrain`)."""

    enabled: bool = True
    cron: str = "30 2 * * *"
    misfire_grace_s: int = Field(3600, ge=1)
    nice: int = Field(10, ge=0, le=19)
    heldout_days: float = Field(2.0, gt=0)
    heldout_stride: int = Field(3, ge=1)
    min_heldout_sequences: int = Field(6, ge=1)
    promotion_margin: float = Field(0.01, ge=-1, le=1)
    train_args: list[str] = []
    timeout_s: float = Field(43200.0, ge=0)

    @field_validator("train_args")
    @classmethod
    def _train_args_free(cls, value: list[str]) -> list[str]:
        for arg in value:
            if arg.split("=", 1)[0] in RETRAIN_OWNS:
                raise ValueError(
                    f"{arg.split('=', 1)[0]} is set by the retrainer (remove it)"
                )
        return value


class VerificationConfig(_Section):
    """Scores: thresholds in dBZ (event = value >= threshold), FSS windows."""

    thresholds: list[float] = [20.0, 35.0, 45.0]
    fss_threshold: float = 35.0
    fss_windows: list[int] = [1, 5, 11, 21]
    match_tolerance_s: float = Field(60.0, ge=0)


class TitanConfig(_Section):
    """The TITAN-style storm tracker baseline."""

    threshold_dbz: float = 35.0
    min_size_km2: float = Field(30.0, ge=0)
    min_size_km3: float = Field(30.0, ge=0)
    use_3d: bool = False
    overlap_threshold: float = Field(0.6, ge=0)
    max_speed_kmh: float = Field(100.0, gt=0)
    history_weights: list[float] = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    history_full_s: float = Field(1200.0, gt=0)
    dz_m: float = Field(1000.0, gt=0)
    weight_distance: float = Field(1.0, ge=0)
    weight_volume: float = Field(1.0, ge=0)


class ExtrapolationConfig(_Section):
    """pysteps optical-flow extrapolation and its S-PROG / ANVIL relatives."""

    ar_order: int = Field(2, ge=1)
    n_cascade_levels: int = Field(6, ge=1)
    rain_threshold_dbz: float = 10.0
    motion_frames: int = Field(3, ge=2)


class LindaConfig(_Section):
    """pysteps' LINDA, deterministic (the strongest and slowest optical-flow peer)."""

    ari_order: int = Field(1, ge=1, le=2)
    feature_method: Literal["blob", "domain", "shitomasi"] = "blob"
    max_num_features: int = Field(25, ge=1)


class BaselinesConfig(_Section):
    titan: TitanConfig = TitanConfig()
    extrapolation: ExtrapolationConfig = ExtrapolationConfig()
    linda: LindaConfig = LindaConfig()


class SyntheticConfig(_Section):
    """The 3D storm simulator: grid and regime parameters.

    Two-number lists are ``[low, high]`` ranges; a value is drawn uniformly from the
    range for each sequence (environment) or each storm (cells).
    """

    size: int = Field(500, ge=16)
    levels: int = Field(18, ge=1)
    bottom_km: float = 0.5
    top_km: float = 17.0
    dx_km: float = Field(1.0, gt=0)
    noise_dbz: float = Field(1.5, ge=0)
    coverage_mask: bool = False
    coverage_range_km: float = Field(0.0, ge=0)
    site_latitude: float = Field(46.0, ge=-90, le=90)
    site_longitude: float = Field(8.0, ge=-180, le=360)
    site_altitude_m: float = 500.0
    wind_speed_ms: list[float] = [5.0, 20.0]
    shear_ms_per_km: list[float] = [0.0, 2.0]
    tilt_s: float = Field(300.0, ge=0)
    freezing_level_km: list[float] = [2.5, 4.0]
    bright_band_dbz: list[float] = [4.0, 10.0]
    stratiform_cover: list[float] = [0.25, 0.6]
    stratiform_peak_dbz: list[float] = [28.0, 38.0]
    stratiform_lifetime_min: list[float] = [90.0, 240.0]
    embedded_cells_per_10k_km2: list[float] = [1.0, 4.0]
    embedded_peak_dbz: list[float] = [38.0, 50.0]
    embedded_life_min: list[float] = [40.0, 120.0]
    multicell_clusters_per_100k_km2: list[float] = [0.4, 1.2]
    multicell_cluster_life_min: list[float] = [150.0, 360.0]
    multicell_births_per_hour: list[float] = [12.0, 24.0]
    multicell_cell_life_min: list[float] = [20.0, 40.0]
    multicell_peak_dbz: list[float] = [45.0, 60.0]
    multicell_top_km: list[float] = [8.0, 13.0]
    multicell_propagation_ms: list[float] = [2.0, 6.0]
    multicell_split_fraction: float = Field(0.2, ge=0, le=1)
    supercell_shear_ms_per_km: list[float] = [3.0, 5.0]
    supercell_deviation_ms: list[float] = [6.0, 9.0]
    supercell_peak_dbz: list[float] = [58.0, 68.0]
    supercell_top_km: list[float] = [12.0, 16.0]
    supercell_life_min: list[float] = [120.0, 300.0]
    cell_growth_end: list[float] = [0.3, 0.3]
    """Fraction of a convective cell's life over which it grows, drawn per cell
    (the default: every cell grows over its first 30 %)."""
    cell_decay_start: list[float] = [0.6, 0.6]
    """Fraction of a cell's life at which it starts to decay, drawn per cell."""

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "SyntheticConfig":
        if self.top_km <= self.bottom_km:
            raise ValueError(
                f"top_km ({self.top_km}) must be above bottom_km ({self.bottom_km})"
            )
        for name, value in self:
            if isinstance(value, list) and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f"{name} must be [low, high] with low <= high")
        for name in ("stratiform_cover", "cell_growth_end", "cell_decay_start"):
            low, high = getattr(self, name)
            if not 0 < low <= high < 1:
                raise ValueError(f"{name} must lie strictly between 0 and 1")
        if self.cell_growth_end[1] > self.cell_decay_start[0]:
            raise ValueError(
                f"cell_growth_end {self.cell_growth_end} must end before "
                f"cell_decay_start {self.cell_decay_start} begins"
            )
        return self


class MonitorConfig(_Section):
    """The Textual dashboard."""

    refresh_s: float = Field(2.0, gt=0)
    skill_refresh_s: float = Field(30.0, gt=0)
    stale_after_s: float = Field(120.0, gt=0)
    default_lead: int = Field(3, ge=1)
    loop_frame_s: float = Field(0.6, gt=0)
    operational_csi: float = Field(0.4, ge=0, le=1)
    chart_threshold: float = 35.0
    chart_hours: int = Field(48, ge=2)
    pictures: Literal["auto", "sixel", "tgp", "halfblock"] = "auto"


class Settings(_Section):
    """The whole configuration; one frozen object a process."""

    paths: PathsConfig = PathsConfig()
    radar: RadarConfig = RadarConfig()
    grid: GridConfig = GridConfig()
    output: OutputConfig = OutputConfig()
    daemon: DaemonConfig = DaemonConfig()
    model: ModelConfig = ModelConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    retrain: RetrainConfig = RetrainConfig()
    verification: VerificationConfig = VerificationConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    monitor: MonitorConfig = MonitorConfig()
    source: Path | None = Field(None, exclude=True)

    def require_dirs(self, *keys: str, create: bool = False) -> None:
        """Check that the ``[paths]`` directories named by ``keys`` exist.

        With ``create=True`` missing ones are made instead. Raises
        :class:`ConfigError` naming the key otherwise.
        """
        for key in keys:
            path = getattr(self.paths, key)
            if path.is_dir():
                continue
            if create:
                try:
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                except OSError as exc:
                    raise ConfigError(
                        f"paths.{key}: cannot create directory {path}: {exc.strerror}"
                    ) from None
            raise ConfigError(
                f"paths.{key}: directory {path} does not exist "
                "(create it or point the key elsewhere)"
            )


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        node = data
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(keys)} is not a table")
            node = child
        node[keys[-1]] = _parse_env_value(raw)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base``, table by table (a phase can set one key)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key (check its spelling against config.toml)"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    if isinstance(got, (str, int, float, bool)):
        msg += f" (got {got!r})"
    more = len(exc.errors()) - 1
    return f"{key}: {msg}" + (f" [and {more} more]" if more else "")


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    paths = {
        name: (value if value.is_absolute() else (base / value))
        for name, value in settings.paths.model_dump().items()
    }
    data_dirs = [
        p if p.is_absolute() else base / p for p in settings.curriculum.data_dirs
    ]
    return settings.model_copy(
        update={
            "paths": PathsConfig(**paths),
            "curriculum": settings.curriculum.model_copy(
                update={"data_dirs": data_dirs}
            ),
        }
    )


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load, override from the environment, validate.

    Parameters
    ----------
    path
        A TOML file; ``None`` means every default.
    environ
        The environment to take ``NOWCAST_*`` overrides from (``os.environ`` when
        ``None``).

    Returns
    -------
    Settings
        Frozen, with ``[paths]`` made absolute.

    Raises
    ------
    ConfigError
        One line naming the file or key and the reason.
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    source: Path | None = None
    if path is not None:
        source = Path(path).expanduser().resolve()
        try:
            with open(source, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
        base = source.parent
    _apply_env(data, os.environ if environ is None else environ)
    defaults = Settings().model_dump(exclude={"source"})
    try:
        settings = Settings.model_validate(_merge(defaults, data))
    except ValidationError as exc:
        where = f"{source}: " if source else ""
        raise ConfigError(where + _format_error(exc)) from None
    settings = _resolve_paths(settings, base)
    return settings.model_copy(update={"source": source})
