"""Air-quality few-shot regression: parsing, missing values, leak-free splits, the sampler and
its refusals, on generated CSVs in the UCI layout; plus checks on the real data, which skip
when it is absent (``$METAZOO_AIR_QUALITY_DIR``, default the shared data folder beside the
repository)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from metazoo.cli import main
from metazoo.tasks import TASKS
from metazoo.tasks.air_quality import COMPASS, FEATURES, HELD_OUT_STATIONS, AirQuality
from tests.helpers import SHARED_DATA

STATIONS = (*HELD_OUT_STATIONS, "Alpha", "Beta")
COLUMNS = ["No", "year", "month", "day", "hour", "PM2.5", "PM10", "SO2", "NO2", "CO", "O3",
           "TEMP", "PRES", "DEWP", "RAIN", "wd", "WSPM", "station"]


def station_frame(station: str, seed: int, days: int = 2) -> pd.DataFrame:
    """``days`` days of every month, 2013-03 → 2017-02, with values of the real ranges."""
    rng = np.random.default_rng(seed)
    stamps = [(y, m, d, h) for y, m in [(2013 + (i + 2) // 12, (i + 2) % 12 + 1) for i in range(48)]
              for d in range(1, days + 1) for h in range(24)]
    year, month, day, hour = (np.array(c) for c in zip(*stamps))
    n = len(stamps)
    co = rng.lognormal(7, 0.6, n).round()
    frame = pd.DataFrame({
        "No": np.arange(1, n + 1), "year": year, "month": month, "day": day, "hour": hour,
        "PM2.5": (co / 15 * rng.lognormal(0, 0.3, n)).round() + 3,
        "PM10": rng.uniform(5, 300, n).round(), "SO2": rng.uniform(2, 60, n).round(),
        "NO2": rng.uniform(5, 120, n).round(), "CO": co, "O3": rng.uniform(1, 150, n).round(),
        "TEMP": rng.normal(13, 11, n).round(1), "PRES": rng.normal(1010, 10, n).round(1),
        "DEWP": rng.normal(2, 13, n).round(1), "RAIN": (rng.exponential(1, n) > 2.5) * 1.5,
        "wd": rng.choice(list(COMPASS), n), "WSPM": rng.gamma(2, 0.8, n).round(1),
        "station": station,
    })
    return frame[COLUMNS]


def write_station(folder: Path, frame: pd.DataFrame) -> Path:
    path = folder / f"PRSA_Data_{frame['station'].iloc[0]}_20130301-20170228.csv"
    frame.to_csv(path, index=False, na_rep="NA")
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    """Five stations (the three held out ones and two others), 48 hours a month, some NA."""
    folder = tmp_path / "air"
    folder.mkdir()
    for seed, station in enumerate(STATIONS):
        frame = station_frame(station, seed)
        frame.loc[5, "PM2.5"] = np.nan  # no target: dropped
        frame.loc[6, "CO"] = np.nan  # an input missing: dropped
        frame.loc[7, "PM10"] = np.nan  # not an input: kept
        frame.loc[8, "wd"] = np.nan  # dropped
        write_station(folder, frame)
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_registered_with_an_mlp_sized_from_its_inputs(data):
    from metazoo.engine.config import DEFAULT_MODEL
    from metazoo.models import make_model

    assert TASKS["air-quality"] is AirQuality
    model = make_model(DEFAULT_MODEL["air-quality"], AirQuality(root=data, stations=STATIONS))
    assert model[0].in_features == len(FEATURES) == 13 and model[-1].out_features == 1


def test_batch_shapes_and_determinism(data):
    tasks = AirQuality(k_shot=5, query_shots=7, root=data, stations=STATIONS)
    batch = tasks.sample(4, torch.Generator().manual_seed(3))
    assert [tuple(t.shape) for t in batch] == [(4, 5, 13), (4, 5, 1), (4, 7, 13), (4, 7, 1)]
    assert all(t.dtype == torch.float32 for t in batch)
    again = tasks.sample(4, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(batch, again))
    other = tasks.sample(4, torch.Generator().manual_seed(4))
    assert not torch.equal(batch.support_y, other.support_y)


def test_each_task_is_distinct_hours_of_one_station_month(data):
    tasks = AirQuality(k_shot=10, query_shots=30, root=data, stations=STATIONS)
    period, rows = tasks.sample_indices(50, torch.Generator().manual_seed(0))
    starts, counts = tasks.starts[period], tasks.counts[period]
    assert ((rows >= starts[:, None]) & (rows < (starts + counts)[:, None])).all()
    assert all(len(set(r.tolist())) == 40 for r in rows)
    # 48 hours a month; three are dropped (missing values) in the first month of each station.
    assert set(counts.tolist()) <= {45, 48}


def test_targets_are_the_csv_values_standardised_with_training_statistics(data):
    tasks = AirQuality(k_shot=5, query_shots=5, root=data, stations=STATIONS, part="test")
    raw = pd.concat([pd.read_csv(p) for p in sorted(data.glob("*.csv"))])
    usable = raw.dropna(subset=["PM2.5", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP",
                                "RAIN", "wd", "WSPM"])
    train = usable[usable.year * 12 + usable.month < 2015 * 12 + 3]
    assert tasks.target_mean == pytest.approx(train["PM2.5"].mean())
    assert tasks.target_std == pytest.approx(train["PM2.5"].std())
    period, rows = tasks.sample_indices(20, torch.Generator().manual_seed(1))
    for p, task_rows in zip(period.tolist(), rows):
        station, month = tasks.periods[p].split()
        year, month = map(int, month.split("-"))
        values = usable[(usable.station == station) & (usable.year == year)
                        & (usable.month == month)]["PM2.5"].to_numpy()
        pm25 = tasks.targets[task_rows, 0].double() * tasks.target_std + tasks.target_mean
        assert np.isin(pm25.round().numpy(), values).all()
    co = torch.log1p(torch.tensor(train["CO"].to_numpy()))
    first = tasks.inputs[0, FEATURES.index("log1p_CO")]  # standardised with train statistics
    test = usable[usable.year * 12 + usable.month >= 2016 * 12 + 3].sort_values(
        ["station", "year", "month"], kind="stable")
    expected = (np.log1p(test["CO"].iloc[0]) - co.mean()) / co.std()
    assert first.item() == pytest.approx(expected.item(), rel=1e-5)


def test_missing_values_drop_the_hour_unless_only_an_unused_column_is_missing(data):
    tasks = AirQuality(root=data, stations=STATIONS)
    first = tasks.periods.index(f"{STATIONS[0]} 2013-03")
    assert tasks.counts[first] == 48 - 3  # PM2.5, CO and wd missing; PM10 is not an input
    assert "PM10" not in " ".join(FEATURES)
    frame = station_frame("Gamma", 9).drop(columns="PM10")  # PM10 is not needed at all
    write_station(data, frame)
    assert any(p.startswith("Gamma") for p in AirQuality(root=data, stations=(*STATIONS, "Gamma")).periods)


def test_statistics_come_from_the_training_part_only(data, tmp_path):
    before = {part: AirQuality(root=data, stations=STATIONS, part=part)
              for part in ("train", "test")}
    # Multiply every later-year PM2.5 and CO by ten: the training statistics must not move.
    for path in data.glob("*.csv"):
        frame = pd.read_csv(path)
        later = frame.year * 12 + frame.month >= 2015 * 12 + 3
        frame.loc[later, ["PM2.5", "CO"]] *= 10
        frame.to_csv(path, index=False, na_rep="NA")
    after = {part: AirQuality(root=data, stations=STATIONS, part=part)
             for part in ("train", "test")}
    for part in ("train", "test"):
        assert after[part].target_mean == before[part].target_mean
        assert after[part].target_std == before[part].target_std
    assert torch.equal(after["train"].inputs, before["train"].inputs)
    # The test targets are the new values on the unchanged training scale.
    mean, std = before["test"].target_mean, before["test"].target_std
    torch.testing.assert_close(after["test"].targets,
                               10 * before["test"].targets + 9 * mean / std, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("split", ["years", "stations"])
def test_splits_hold_out_later_years_and_stations(data, split):
    parts = {part: AirQuality(root=data, stations=STATIONS, split=split, part=part)
             for part in ("train", "val", "test")}

    def months(part):
        return {p.split()[1] for p in parts[part].periods}

    def stations(part):
        return {p.split()[0] for p in parts[part].periods}

    assert max(months("train")) == "2015-02" and min(months("val")) == "2015-03"
    assert max(months("val")) == "2016-02" and min(months("test")) == "2016-03"
    if split == "years":
        assert stations("train") == stations("test") == set(STATIONS)
    else:
        assert stations("test") == set(HELD_OUT_STATIONS)
        assert not stations("train") & stations("test")
        assert not stations("val") & stations("test")
        assert parts["test"].target_mean == parts["train"].target_mean


def test_reading_writes_nothing_into_the_data_folder(data):
    before = snapshot(data)
    for part in ("train", "test"):
        AirQuality(root=data, stations=STATIONS, part=part).sample(
            3, torch.Generator().manual_seed(0))
    assert snapshot(data) == before


def set_cell(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame.loc[row, column] = value
    return frame


def corrupt(data: Path, change) -> Path:
    path = min(data.glob("*.csv"))
    frame = pd.read_csv(path, keep_default_na=False).astype(object)
    frame = change(frame)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns="CO"), "has no column CO; it must be a CSV with columns"),
    (lambda f: f.drop(columns=["TEMP", "wd"]), "has no column TEMP, wd;"),
    (lambda f: set_cell(f, 3, "TEMP", "warm"),
     "column 'TEMP' holds 'warm' on data row 4, not a number or NA; fix or remove"),
    (lambda f: set_cell(f, 3, "hour", "NA"), "column 'hour' holds"),
    (lambda f: set_cell(f, 3, "hour", 24), "month must be 1-12 and hour 0-23"),
    (lambda f: set_cell(f, 2, "wd", "NORTH"), "column 'wd' holds 'NORTH', not one of the 16"),
    (lambda f: set_cell(f, 2, "station", "Other"), "column 'station' must name one station"),
    (lambda f: f.iloc[:0], "column 'station' must name one station, found 0"),
])
def test_a_bad_csv_is_refused_in_one_line_naming_the_file(data, change, message):
    path = corrupt(data, change)
    with pytest.raises(ValueError) as error:
        AirQuality(root=data, stations=STATIONS)
    assert message in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_unreadable_and_duplicate_files_are_refused(data):
    (data / "notes.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"notes\.csv: cannot be read as a CSV"):
        AirQuality(root=data, stations=STATIONS)
    (data / "notes.csv").unlink()
    (data / "copy.csv").write_bytes(min(data.glob("PRSA*.csv")).read_bytes())
    with pytest.raises(ValueError, match=r"station 'Alpha' is in both .* keep one file per station"):
        AirQuality(root=data, stations=STATIONS)


def test_impossible_requests_are_refused(data, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"k_shot \+ query_shots = 60 hours per task, but no "
                                         r"station-month .* \(at most 48\)"):
        AirQuality(k_shot=30, query_shots=30, root=data, stations=STATIONS)
    with pytest.raises(ValueError, match="k_shot must be a positive integer"):
        AirQuality(k_shot=0, root=data, stations=STATIONS)
    with pytest.raises(ValueError, match="test_from must be a month written YYYY-MM, got '2016'"):
        AirQuality(root=data, stations=STATIONS, test_from="2016")
    with pytest.raises(ValueError, match=r"val_from \(2016-03\) must come before test_from"):
        AirQuality(root=data, stations=STATIONS, val_from="2016-03")
    with pytest.raises(ValueError, match="split 'vinyals' is not an air-quality split"):
        AirQuality(split="vinyals", root=data, stations=STATIONS)
    with pytest.raises(ValueError, match=r"does not exist; pass --data-dir pointing at the folder"):
        AirQuality(root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="holds no .csv files"):
        AirQuality(root=tmp_path)
    monkeypatch.delenv("METAZOO_AIR_QUALITY_DIR", raising=False)
    with pytest.raises(ValueError, match=r"needs its data: pass --data-dir DIR"):
        AirQuality()
    monkeypatch.setenv("METAZOO_AIR_QUALITY_DIR", str(data))
    assert AirQuality(stations=STATIONS).periods
    with pytest.raises(ValueError, match="the stations/test part .* holds no usable hours"):
        AirQuality(root=data, stations=STATIONS, split="stations", part="test",
                   held_out_stations=("Nowhere",))
    # The data set's twelve stations, unless they are listed: none is quietly left out.
    with pytest.raises(ValueError, match=r"holds no file for stations Aotizhongxin, Changping, "
                                         r".* and 4 more \(PRSA_Data_Aotizhongxin_"):
        AirQuality(root=data)
    with pytest.raises(ValueError, match="holds no file for station Wanliu"):
        AirQuality(root=data, stations=(*STATIONS, "Wanliu"))
    with pytest.raises(ValueError, match="stations must be distinct station names"):
        AirQuality(root=data, stations=(*STATIONS, STATIONS[0]))


def test_cli_trains_on_air_quality_and_refuses_bad_data_in_one_line(data, tmp_path, capsys):
    before = snapshot(data)
    out = tmp_path / "run"
    code = main(["train", "--task", "air-quality", "--data-dir", str(data), "--stations", *STATIONS, "--iterations", "3",
                 "--k-shot", "5", "--eval-tasks", "10", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["split"] == "years" and config["model"] == "mlp"  # resolved, as used
    assert snapshot(data) == before
    for args, message in [
        (["--data-dir", str(tmp_path / "missing")], "does not exist; pass --data-dir"),
        (["--data-dir", str(data), "--stations", *STATIONS, "--split", "vinyals"], "not an air-quality split"),
        (["--data-dir", str(data), "--stations", *STATIONS, "--k-shot", "50"], "no station-month"),
    ]:
        code = main(["train", "--task", "air-quality", *args, "--iterations", "1",
                     "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------- real data


def _real_root() -> Path | None:
    env = os.environ.get("METAZOO_AIR_QUALITY_DIR")
    root = Path(env) if env else SHARED_DATA / "beijing_air_quality"
    return root if len(list(root.glob("PRSA_Data_*.csv"))) == 12 else None


REAL = _real_root()
needs_data = pytest.mark.skipif(
    REAL is None, reason="Beijing air-quality CSVs not found: set METAZOO_AIR_QUALITY_DIR to the "
                         "folder holding the 12 PRSA_Data_*.csv files")


@needs_data
def test_real_data_splits():
    years = {part: AirQuality(root=REAL, part=part) for part in ("train", "test")}
    stations = AirQuality(root=REAL, split="stations", part="test")
    assert len(years["test"].periods) == 144  # 12 stations × 12 months
    assert len(stations.periods) == 36  # 3 held-out stations × 12 months
    assert {p.split()[0] for p in years["train"].periods} >= set(HELD_OUT_STATIONS)
    # PM2.5 is strongly right-skewed: the training mean is ~84 µg/m³, its spread ~79.
    assert 70 < years["train"].target_mean < 100 and 60 < years["train"].target_std < 100
    assert len(years["train"].inputs) > 150_000
