"""The generated docker-compose.yml of a build folder, and its self-contained folder."""

from __future__ import annotations

import json
import shutil

import pytest

from federation.adapters import scenario_for
from federation.build import copy_scenario, write_build
from federation.scenario import SCENARIO_DIR


def test_build_folder_compose_is_self_contained(tmp_path):
    # a custom scenario that happens to be called tiny must run from its own file
    custom = tmp_path / "mine"
    custom.mkdir()
    shutil.copy(SCENARIO_DIR / "tiny.toml", custom / "tiny.toml")
    built = write_build(custom / "tiny.toml", "A", tmp_path / "out", image="reg.example/sn:1.2")
    out = built.out_dir
    assert (out / "scenario" / "tiny.toml").read_bytes() == (custom / "tiny.toml").read_bytes()
    cfg = json.loads((out / "configs" / "dso_1.json").read_text())
    assert cfg["smartnet"]["scenario_file"] == "scenario/tiny.toml"
    assert cfg["smartnet"]["scenario_cache"] == "scenario.pkl"
    assert "--tick=1000ms" in cfg["coreInitString"]
    text = built.compose.read_text()
    assert "  image: reg.example/sn:1.2\n" in text
    assert "  build: ." not in text  # a build folder has no Dockerfile: the image is built first
    assert "  init: true\n" in text and '  restart: "no"\n' in text
    assert "--local_interface=tcp://0.0.0.0" in text and "--interface=" not in text
    assert f"--brokerkey={built.broker.key}" in text  # the build's own key
    assert "python -m federates.dso configs/dso_1.json --broker-address broker" in text
    # the folder read-only for everyone; results writable only for the recorder
    assert text.count('".:/build:ro"') == 2
    assert text.count("./results:/build/results") == 1
    recorder = text[text.index("  recorder:") :]
    assert "./results:/build/results" in recorder


def test_scenario_cache_never_falls_back_to_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"scenario\.pkl"):
        scenario_for({"scenario": "tiny", "scenario_cache": "scenario.pkl"})


def test_copy_scenario_takes_the_data_files_it_names(tmp_path):
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "data" / "load.csv").write_text("t,p\n0,1\n")
    (src / "s.toml").write_text('[profiles.a]\nfile = "data/load.csv"\n')
    copied = copy_scenario(src / "s.toml", tmp_path / "dest")
    assert copied == tmp_path / "dest" / "s.toml"
    assert (tmp_path / "dest" / "data" / "load.csv").read_text() == "t,p\n0,1\n"
    (src / "t.toml").write_text('[profiles.a]\nfile = "../outside.csv"\n')
    (tmp_path / "outside.csv").write_text("x\n")
    with pytest.raises(ValueError, match="outside the scenario folder"):
        copy_scenario(src / "t.toml", tmp_path / "dest2")
    assert copy_scenario("tiny", tmp_path / "dest3") is None  # embedded: in the image
