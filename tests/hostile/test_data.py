"""Bad data is refused at load, in one line naming the file (and row or index) and the fix:
non-finite values, values of the wrong type or shape, a data set missing some of its files;
nothing is trained on it, and nothing else is printed."""

import warnings

import numpy as np
import pytest

from tests.hostile.harness import OK, TINY, cli, refused
from tests.tasks.test_air_quality import station_frame, write_station

#: The twelve stations of the UCI Beijing Multi-Site Air-Quality data set.
STATIONS = ("Aotizhongxin", "Changping", "Dingling", "Dongsi", "Guanyuan", "Gucheng", "Huairou",
            "Nongzhanguan", "Shunyi", "Tiantan", "Wanliu", "Wanshouxigong")
ARRAYS = ["--task", "arrays", "--n-way", "2", "--k-shot", "1", "--query-shots", "1"]


def arrays(folder, inputs=None, labels=None):
    """20 classes of 2 examples each, as inputs.npy and labels.npy in ``folder``."""
    folder.mkdir(exist_ok=True)
    np.save(folder / "inputs.npy", np.arange(160, dtype="float32").reshape(40, 4) / 160
            if inputs is None else inputs)
    np.save(folder / "labels.npy", np.repeat(np.arange(20), 2) if labels is None else labels)
    return folder


def test_good_arrays_train(tmp_path):
    result = cli("train", *TINY, *ARRAYS, "--data-dir", arrays(tmp_path / "data"), "--out",
                 tmp_path / "run")
    assert result.code == OK, result.err


@pytest.mark.parametrize("value, shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_arrays_are_refused_naming_the_index(value, shown, tmp_path):
    inputs = np.ones((40, 4), dtype="float32")
    inputs[13, 2] = value
    data = arrays(tmp_path / "data", inputs=inputs)
    refused("train", *TINY, *ARRAYS, "--data-dir", data, "--out", tmp_path / "run",
            watch=tmp_path, absent=[tmp_path / "run"],
            message=f"{data / 'inputs.npy'} holds {shown} at index [13, 2]")


BAD_ARRAYS = [
    ({"labels": np.repeat(np.array([f"c{i}" for i in range(20)]), 2)},
     "labels.npy holds strings (<U3); labels must be integers"),
    ({"labels": np.repeat(np.arange(20.0), 2)}, "labels.npy holds float64; labels must be integers"),
    ({"inputs": np.float32(3.0)}, "inputs.npy is a single number (shape [])"),
    ({"inputs": np.array(["a"] * 40)}, "inputs.npy holds strings (<U1); inputs must be numbers"),
    ({"labels": np.arange(20)}, "labels.npy has 20 labels for 40 inputs"),
]


@pytest.mark.parametrize("arrays_given, message", BAD_ARRAYS, ids=[m[:30] for _, m in BAD_ARRAYS])
def test_arrays_of_the_wrong_type_or_shape(arrays_given, message, tmp_path):
    data = arrays(tmp_path / "data", **arrays_given)
    refused("train", *TINY, *ARRAYS, "--data-dir", data, "--out", tmp_path / "run",
            watch=tmp_path, absent=[tmp_path / "run"], message=message)


AIR = ["--task", "air-quality", "--k-shot", "5", "--query-shots", "5", "--eval-tasks", "2"]


def air(folder, stations=STATIONS, days=2):
    folder.mkdir(exist_ok=True)
    for seed, station in enumerate(stations):
        write_station(folder, station_frame(station, seed, days=days))
    return folder


@pytest.mark.parametrize("text", ["inf", "-inf", "1e309"])
def test_air_quality_values_that_are_not_finite(text, tmp_path):
    data = air(tmp_path / "air")
    path = data / f"PRSA_Data_{STATIONS[0]}_20130301-20170228.csv"
    lines = path.read_text().splitlines()
    cells = lines[4].split(",")
    cells[9] = text  # CO
    lines[4] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        refused("train", *TINY, *AIR, "--data-dir", data, "--out", tmp_path / "run",
                watch=tmp_path, absent=[tmp_path / "run"],
                message=f"{path}: column 'CO' holds {float(text)} on data row 4, not a finite number")
    assert [str(w.message) for w in shown] == []


def test_an_air_quality_value_that_is_not_a_number_is_the_only_output(tmp_path):
    # A file as long as the real ones: pandas reads it in chunks and warns of mixed types.
    data = air(tmp_path / "air", stations=STATIONS[:1], days=31)
    path = next(data.glob("*.csv"))
    lines = path.read_text().splitlines()
    cells = lines[30000].split(",")
    cells[9] = "abc"
    lines[30000] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        refused("train", *TINY, *AIR, "--data-dir", data, "--out", tmp_path / "run",
                watch=tmp_path, message="column 'CO' holds 'abc' on data row 30000")
    assert [str(w.message) for w in shown] == []


def test_an_air_quality_station_missing_is_refused_unless_the_stations_are_listed(tmp_path):
    data = air(tmp_path / "air", stations=[s for s in STATIONS if s != "Wanliu"])
    refused("train", *TINY, *AIR, "--data-dir", data, "--out", tmp_path / "run",
            watch=tmp_path, absent=[tmp_path / "run"],
            message="holds no file for station Wanliu (PRSA_Data_Wanliu_20130301-20170228.csv)")
    others = [s for s in STATIONS if s != "Wanliu"]
    result = cli("train", *TINY, *AIR, "--data-dir", data, "--stations", *others, "--out",
                 tmp_path / "run")
    assert result.code == OK, result.err
