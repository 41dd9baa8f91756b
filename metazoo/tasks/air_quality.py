"""Few-shot regression on real air-quality data: Beijing, 12 stations, hourly, 2013-03 → 2017-02.

Data: the UCI "Beijing Multi-Site Air-Quality" set (Zhang et al., 2017), one CSV per
station (``PRSA_Data_<station>_20130301-20170228.csv``, columns ``No, year, month, day,
hour, PM2.5, PM10, SO2, NO2, CO, O3, TEMP, PRES, DEWP, RAIN, wd, WSPM, station``; missing
values written ``NA``), parsed with pandas. Nothing is written anywhere: the folder is only
read, and the parsed table is kept in memory for the life of the process. The folder must
hold a file for each of the twelve stations, unless the stations to use are listed
(``stations``): a data set missing one is refused, never quietly used without it.

**A task** is one station over one calendar month (about 670 usable hours): ``k_shot``
support and ``query_shots`` query hours, distinct, drawn at random from that station-month.
The practical reading: a PM2.5 monitor that was down, or a new low-cost sensor, at a station
whose gas analysers and weather feed work; K hours with PM2.5 known, predict the others.
Support and query hours interleave in time (neighbouring hours are correlated), which makes
the task gap-filling rather than forecasting; it is the same for every method compared.

**The target** is PM2.5 in µg/m³, standardised, ``(PM2.5 − mean) / std``, with the mean and
standard deviation of the training part. Not its log: the question asked of this task is
RMSE in µg/m³, and with a linear rescaling the mean squared error every method minimises *is*
that error (÷ std²), so what meta-training optimises is what is reported
(``rmse = sqrt(mse) · target_std``). A log target would optimise relative error instead, and
its back-transform ``exp(E[log y])`` under-predicts the mean of a skewed variable. The price:
haze months (PM2.5 up to 999) weigh more, exactly as they do in the metric.

**The inputs** (13, :data:`FEATURES`), all known at the hour predicted:

* the other pollutants, CO, NO2, SO2 and O3, as ``log(1 + value)``: they span two to three
  orders of magnitude and relate to particles multiplicatively. CO and NO2 are combustion
  tracers that rise with PM2.5 in stagnant air; O3 falls in haze (r = −0.30 on the log scale);
* the weather: temperature, pressure, dew point, wind speed, ``log(1 + rain)``, and the wind
  direction (16 compass points) as the sine and cosine of its bearing, since north and
  north-north-west are neighbours;
* the hour of day as sine and cosine (the boundary layer's daily cycle changes how gases and
  particles relate).

**PM10 is left out, deliberately.** PM2.5 is part of PM10 (the particles under 2.5 µm are
inside the PM10 mass, r = 0.88 here), measured by the same kind of monitor: an hour with a
PM10 value almost always has a PM2.5 one, and with it as an input the task becomes a
near-identity calibration that says little about learning from few examples. Also left out:
the date (a model could memorise pollution episodes) and the station's name (the tasks are
stations). Every input is standardised with the training part's statistics.

**Missing values.** An hour is used only when PM2.5 and every input are present (9.1% of
hours are not, mostly for CO); nothing is imputed, so no model learns from guesses. A
station-month with fewer than ``k_shot + query_shots`` usable hours is not sampled.

**Splits** (``split``; parts ``train``, ``val``, ``test``), by whole years March → February so
that every part holds every season:

* ``years``: every station; train 2013-03 → 2015-02, val 2015-03 → 2016-02, test 2016-03 →
  2017-02. Training never sees an hour from a later year.
* ``stations``: :data:`HELD_OUT_STATIONS` (three of the twelve, drawn by a seeded shuffle of
  the sorted names, seed 501, and fixed here) are never seen in training. Train and val are
  the other nine stations over the same years as above; test is the three held-out stations
  in the test year. The test year is held out too, because Beijing's weather and pollution
  episodes are city-wide: a model trained on other stations in the same month would have
  seen that month's episodes.

Normalisation statistics always come from the train part (for ``stations``, of the nine
training stations only), whatever part is sampled.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from metazoo.messages import brief
from metazoo.tasks.base import DataError, TaskBatch, check_counts, in_blocks

ROOT_ENV = "METAZOO_AIR_QUALITY_DIR"
TARGET = "PM2.5"
POLLUTANTS = ("CO", "NO2", "SO2", "O3")  # log(1 + value)
WEATHER = ("TEMP", "PRES", "DEWP", "WSPM")  # as measured
#: Columns every CSV must have (PM10 and the others may be present; they are not read).
COLUMNS = ("year", "month", "hour", TARGET, *POLLUTANTS, *WEATHER, "RAIN", "wd", "station")
#: The model's inputs, in order: the 13 columns of a task's ``x``.
FEATURES = (*(f"log1p_{name}" for name in POLLUTANTS), *WEATHER, "log1p_RAIN",
            "wind_sin", "wind_cos", "hour_sin", "hour_cos")
#: Wind direction → bearing in degrees (the 16 compass points of the ``wd`` column).
COMPASS = {name: 22.5 * i for i, name in enumerate(
    ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"])}
#: The twelve stations of the data set; a folder must hold a file for each, unless the
#: stations to use are listed (``stations``).
STATIONS = ("Aotizhongxin", "Changping", "Dingling", "Dongsi", "Guanyuan", "Gucheng", "Huairou",
            "Nongzhanguan", "Shunyi", "Tiantan", "Wanliu", "Wanshouxigong")
#: Stations never seen in training by the ``stations`` split (seeded shuffle, seed 501).
HELD_OUT_STATIONS = ("Dongsi", "Nongzhanguan", "Tiantan")
SPLITS = ("years", "stations")
PARTS = ("train", "val", "test")
HOW_TO_GET = ("the folder of the PRSA_Data_<station>_20130301-20170228.csv files of the UCI "
              "Beijing Multi-Site Air-Quality data set")


def resolve_root(root: str | Path | None = None) -> Path:
    """The data folder: ``root``, else ``$METAZOO_AIR_QUALITY_DIR``; refused if neither."""
    if root is None or str(root) == "":
        root = os.environ.get(ROOT_ENV, "")
        if not root:
            raise DataError(f"air-quality needs its data: pass --data-dir DIR ({HOW_TO_GET}), "
                            f"or set ${ROOT_ENV}")
    return Path(root).expanduser()


def station_file(station: str) -> str:
    """The name of a station's CSV in the UCI data set."""
    return f"PRSA_Data_{station}_20130301-20170228.csv"


def load_air_quality(root: str | Path | None = None,
                     stations: tuple[str, ...] = STATIONS) -> pd.DataFrame:
    """Every usable hour of each of ``stations`` in ``root``, one row each, sorted by
    station-month. Each station must have its file: a data set missing one is refused, not
    quietly used without it.

    Columns: ``station``, ``month_index`` (``12·year + month − 1``), the :data:`FEATURES`
    (transformed, not yet standardised) and ``PM2.5`` (µg/m³). Hours with a missing target or
    input are dropped. Parsed once per process for each folder state (file names, sizes and
    modification times), so a training run's train and test parts share one parse.

    Raises:
        DataError: one line naming the folder or file and the fix, for a missing folder, a
            folder without CSVs, an unreadable CSV, a missing column, a value that is not a
            finite number, an unknown wind direction, a station found in two files, or a
            station of ``stations`` with no file.
    """
    folder = resolve_root(root)
    if not folder.is_dir():
        raise DataError(f"air-quality data folder {folder} does not exist; pass --data-dir "
                        f"pointing at {HOW_TO_GET}")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DataError(f"air-quality data folder {folder} holds no .csv files; pass --data-dir "
                        f"pointing at {HOW_TO_GET}")
    state = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    table = _load(str(folder.resolve()), state)
    found = set(table["station"].unique())
    missing = [station for station in stations if station not in found]
    if missing:
        raise DataError(
            f"air-quality data folder {folder} holds no file for station"
            f"{'s' if len(missing) > 1 else ''} {brief(missing)} "
            f"({brief([station_file(station) for station in missing], limit=2)}); put "
            f"{'them' if len(missing) > 1 else 'it'} there, or list the stations to use "
            "(--stations)")
    return table[table["station"].isin(stations)].reset_index(drop=True)


@lru_cache(maxsize=4)
def _load(folder: str, state: tuple) -> pd.DataFrame:
    # Cached: callers only read the table (they select rows into new frames).
    frames, seen = [], {}
    for name, _, _ in state:
        station, frame = _read_station(Path(folder) / name)
        if station in seen:
            raise DataError(f"station {station!r} is in both {seen[station]} and {name} in "
                            f"{folder}; keep one file per station")
        seen[station] = name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["station", "month_index"], kind="stable", ignore_index=True)


def _read_station(path: Path) -> tuple[str, pd.DataFrame]:
    """One station's CSV → (its name, its usable hours with features computed)."""
    fix = f"it must be a CSV with columns {', '.join(COLUMNS)} (the UCI PRSA_Data_*.csv format)"
    try:
        # low_memory=False: read in one piece, so that a column of mixed types is refused
        # below, in one line, not first announced by a pandas warning.
        raw = pd.read_csv(path, usecols=lambda column: column in COLUMNS, na_values=["NA"],
                          low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        reason = " ".join(str(error).split())[:200]
        raise DataError(f"{path}: cannot be read as a CSV ({reason}); {fix}") from error
    missing = [column for column in COLUMNS if column not in raw.columns]
    if missing:
        raise DataError(f"{path} has no column {', '.join(missing)}; {fix}")
    for column in ("year", "month", "hour", TARGET, *POLLUTANTS, *WEATHER, "RAIN"):
        numbers = pd.to_numeric(raw[column], errors="coerce")
        bad = numbers.isna() & raw[column].notna()
        if column in ("year", "month", "hour"):
            bad |= raw[column].isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise DataError(f"{path}: column {column!r} holds {raw[column].iloc[row]!r} on data "
                            f"row {row + 1}, not a number{'' if column in ('year', 'month', 'hour') else ' or NA'}; "
                            "fix or remove that row")
        infinite = np.isinf(numbers.to_numpy(dtype="float64"))
        if infinite.any():  # "inf", or a number too large for a float (1e309)
            row = int(infinite.argmax())
            raise DataError(f"{path}: column {column!r} holds {numbers.iloc[row]} on data row "
                            f"{row + 1}, not a finite number; fix or remove that row")
        raw[column] = numbers.astype("float64")
    if not (raw["month"].between(1, 12).all() and raw["hour"].between(0, 23).all()):
        raise DataError(f"{path}: month must be 1-12 and hour 0-23; fix or remove those rows")
    unknown = sorted(set(raw["wd"].dropna()) - set(COMPASS))
    if unknown:
        raise DataError(f"{path}: column 'wd' holds {unknown[0]!r}, not one of the 16 compass "
                        f"points ({', '.join(COMPASS)}) or NA; fix or remove those rows")
    stations = raw["station"].dropna().unique()
    if len(stations) != 1:
        raise DataError(f"{path}: column 'station' must name one station, found "
                        f"{len(stations)}; keep one station per file")
    usable = raw.dropna(subset=[c for c in COLUMNS if c != "station"])
    bearing = np.deg2rad(usable["wd"].map(COMPASS).to_numpy(dtype="float64"))
    hour = 2 * math.pi * usable["hour"].to_numpy() / 24
    features = {f"log1p_{name}": np.log1p(usable[name].clip(lower=0)) for name in POLLUTANTS}
    features.update({name: usable[name] for name in WEATHER})
    features.update({"log1p_RAIN": np.log1p(usable["RAIN"].clip(lower=0)),
                     "wind_sin": np.sin(bearing), "wind_cos": np.cos(bearing),
                     "hour_sin": np.sin(hour), "hour_cos": np.cos(hour)})
    return str(stations[0]), pd.DataFrame({
        "station": str(stations[0]),
        "month_index": (12 * usable["year"] + usable["month"] - 1).astype("int64"),
        **{name: np.asarray(values, dtype="float64") for name, values in features.items()},
        TARGET: usable[TARGET].to_numpy(dtype="float64"),
    })


def _month_index(name: str, text: str) -> int:
    """``"YYYY-MM"`` → ``12·year + month − 1``, or a clear error naming the field."""
    year, _, month = str(text).partition("-")
    if not (year.isdigit() and month.isdigit() and 1 <= int(month) <= 12):
        raise ValueError(f"{name} must be a month written YYYY-MM, got {text!r}")
    return 12 * int(year) + int(month) - 1


class HourIndices(NamedTuple):
    """A batch of air-quality tasks before any hour is gathered."""

    period: torch.Tensor  # [T] index into AirQuality.periods
    rows: torch.Tensor  # [T, K+Q] rows of AirQuality.inputs, support first


@dataclass(frozen=True)
class AirQuality:
    """Station-month regression tasks: ``x`` ``[T, S, 13]`` (:data:`FEATURES`), ``y`` ``[T, S, 1]``.

    Building one reads the data (once per process), so a missing folder, a bad file or an
    impossible request fails here, not at the first batch.

    Attributes:
        k_shot: support hours per task.
        query_shots: query hours per task (distinct from the support hours).
        split: ``"years"`` or ``"stations"`` (see the module docstring).
        part: ``"train"``, ``"val"`` or ``"test"``.
        root: data folder (default ``$METAZOO_AIR_QUALITY_DIR``).
        val_from: first month of the val part (``"YYYY-MM"``); train is every earlier month.
        test_from: first month of the test part; val is ``val_from`` up to it.
        held_out_stations: the ``stations`` split's test stations.
        stations: the stations to use (empty: all twelve, :data:`STATIONS`); each must have
            its file in ``root``.
        target_mean, target_std: the training part's PM2.5 mean and standard deviation in
            µg/m³ (``y · target_std + target_mean`` is PM2.5).
        periods: ``"<station> YYYY-MM"`` of each station-month this part samples from.
    """

    k_shot: int = 10
    query_shots: int = 10
    split: str = "years"
    part: str = "train"
    root: str | Path | None = None
    val_from: str = "2015-03"
    test_from: str = "2016-03"
    held_out_stations: tuple[str, ...] = HELD_OUT_STATIONS
    stations: tuple[str, ...] = ()
    loss: str = "mse"
    target_mean: float = field(init=False, repr=False, compare=False)
    target_std: float = field(init=False, repr=False, compare=False)
    periods: tuple[str, ...] = field(init=False, repr=False, compare=False)
    inputs: torch.Tensor = field(init=False, repr=False, compare=False)  # [N, 13]
    targets: torch.Tensor = field(init=False, repr=False, compare=False)  # [N, 1]
    starts: torch.Tensor = field(init=False, repr=False, compare=False)  # [P] first row
    counts: torch.Tensor = field(init=False, repr=False, compare=False)  # [P] usable hours

    def __post_init__(self) -> None:
        check_counts(k_shot=self.k_shot, query_shots=self.query_shots)
        if self.split not in SPLITS:
            raise ValueError(f"split {self.split!r} is not an air-quality split; choose one of: "
                             f"{', '.join(SPLITS)} (--split)")
        if self.part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}, got {self.part!r}")
        if _month_index("val_from", self.val_from) >= _month_index("test_from", self.test_from):
            raise ValueError(f"val_from ({self.val_from}) must come before test_from "
                             f"({self.test_from})")
        if len(set(self.stations)) != len(self.stations) or not all(
                isinstance(station, str) and station for station in self.stations):
            raise ValueError(f"stations must be distinct station names, got "
                             f"{brief(map(repr, self.stations))} (--stations)")
        table = load_air_quality(self.root, tuple(self.stations) or STATIONS)
        train = table[self._rows(table, "train")]
        rows = table[self._rows(table, self.part)]
        if train.empty or rows.empty:
            empty = "train" if train.empty else self.part
            raise DataError(f"the {self.split}/{empty} part of {resolve_root(self.root)} holds "
                            "no usable hours; check the data's years and stations")
        # Standardise with the training part's statistics only: nothing of the later years
        # or the held-out stations leaks into the inputs' scale.
        mean, std = train[list(FEATURES)].mean(), train[list(FEATURES)].std().replace(0, 1)
        inputs = ((rows[list(FEATURES)] - mean) / std).to_numpy(dtype="float32")
        target_mean, target_std = float(train[TARGET].mean()), float(train[TARGET].std())
        targets = ((rows[TARGET] - target_mean) / target_std).to_numpy(dtype="float32")
        # Rows are sorted by station-month, so each period is a contiguous block of rows.
        station_code, stations = pd.factorize(rows["station"], sort=True)
        # One integer per station-month: a multiple of 12 above any month index, plus it.
        period_code = station_code * 120_000 + rows["month_index"].to_numpy()
        codes, starts, counts = np.unique(period_code, return_index=True, return_counts=True)
        names = np.array([f"{stations[c // 120_000]} {c % 120_000 // 12}-{c % 12 + 1:02d}"
                          for c in codes])
        needed = self.k_shot + self.query_shots
        enough = counts >= needed
        if not enough.any():
            raise ValueError(f"k_shot + query_shots = {needed} hours per task, but no "
                             f"station-month in the {self.split}/{self.part} part of "
                             f"{resolve_root(self.root)} has that many usable hours (at most "
                             f"{counts.max()}); ask for fewer (--k-shot, --query-shots)")
        for name, value in (
            ("target_mean", target_mean), ("target_std", target_std),
            ("periods", tuple(str(name) for name in names[enough])),
            ("inputs", torch.tensor(inputs)),  # copies: pandas hands out read-only arrays
            ("targets", torch.tensor(targets).unsqueeze(-1)),
            ("starts", torch.tensor(starts[enough], dtype=torch.long)),
            ("counts", torch.tensor(counts[enough], dtype=torch.long)),
        ):
            object.__setattr__(self, name, value)

    def _rows(self, table: pd.DataFrame, part: str) -> pd.Series:
        """Which rows of ``table`` belong to ``part`` of this split."""
        month = table["month_index"]
        val_from = _month_index("val_from", self.val_from)
        test_from = _month_index("test_from", self.test_from)
        in_time = {"train": month < val_from, "val": (month >= val_from) & (month < test_from),
                   "test": month >= test_from}[part]
        if self.split == "years":
            return in_time
        held_out = table["station"].isin(self.held_out_stations)
        return in_time & (held_out if part == "test" else ~held_out)

    def sample_indices(self, num_tasks: int, generator: torch.Generator) -> HourIndices:
        """Draw ``num_tasks`` tasks as indices (every random number from ``generator``).

        Returns:
            ``(period [T], rows [T, k_shot + query_shots])``: each task's station-month (an
            index into :attr:`periods`) and its distinct hours (rows of :attr:`inputs`),
            support first.
        """
        check_counts(num_tasks=num_tasks)
        period = in_blocks(num_tasks, lambda start, stop: torch.randint(
            len(self.periods), (stop - start,), generator=generator))  # [T]
        counts = self.counts[period]  # [T]

        def hours(start: int, stop: int) -> torch.Tensor:
            # A uniformly random subset of each period's hours: sort random keys, with the
            # positions past the period's end pushed last.
            keys = torch.rand((stop - start, int(self.counts.max())), generator=generator)
            keys[torch.arange(keys.shape[1]) >= counts[start:stop, None]] = 2.0
            return keys.argsort(dim=1)[:, : self.k_shot + self.query_shots]  # [B, K+Q]

        chosen = in_blocks(num_tasks, hours)  # [T, K+Q]
        return HourIndices(period, self.starts[period][:, None] + chosen)

    def gather(self, indices: HourIndices) -> TaskBatch:
        """The hours that ``indices`` name, as a :class:`TaskBatch`."""
        x, y = self.inputs[indices.rows], self.targets[indices.rows]  # [T, K+Q, 13], [T, K+Q, 1]
        k = self.k_shot
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        return self.gather(self.sample_indices(num_tasks, generator))


__all__ = ["FEATURES", "HELD_OUT_STATIONS", "STATIONS", "AirQuality", "HourIndices",
           "load_air_quality", "station_file"]
