"""The one parameter source: profiles from the YAML, overrides by section, help from the fields."""

from __future__ import annotations

import pytest

from lusynth.errors import InputError
from lusynth.params import field_choices, field_help, merge_overrides, parse_assignments, read_params_file, resolve, stage_params


def test_assignments_parse_by_section_and_field() -> None:
    assert parse_assignments(["gan.epochs=5", "experiment.fractions=0.5,1"]) == {"gan": {"epochs": "5"},
                                                                                 "experiment": {"fractions": "0.5,1"}}
    for bad, message in [("gan.epochs", "SECTION.KEY=VALUE"), ("nope.x=1", "unknown section 'nope'"), ("gan.epochz=1", "no parameter 'epochz'")]:
        with pytest.raises(InputError, match=message):
            parse_assignments([bad])


def test_values_are_parsed_by_the_fields_type_and_checked() -> None:
    r = resolve(["experiment", "gan"], "demo", {"experiment": {"fractions": "1,0.5", "seeds": "0,1"}, "gan": {"epochs": "7"}})
    assert r["experiment"].fractions == (0.5, 1.0) and r["experiment"].seeds == (0, 1) and r["gan"].epochs == 7
    with pytest.raises(InputError, match=r"profile demo, section gan: gan.batch_size=1: BatchNorm needs at least 2"):
        stage_params("gan", "demo", {"batch_size": 1})
    with pytest.raises(InputError, match=r"unknown parameter section"):
        resolve(["gan"], "demo", {"gann": {}})


def test_later_layers_win_field_by_field(tmp_path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text("profile: tiny\ngan: {epochs: 3, ngf: 8}\nclasses: [a, b]\n")
    assert read_params_file(f) == {"gan": {"epochs": 3, "ngf": 8}}
    assert merge_overrides(read_params_file(f), {"gan": {"epochs": 4, "ndf": None}}) == {"gan": {"epochs": 4, "ngf": 8}}
    with pytest.raises(InputError, match="params file not found"):
        read_params_file(tmp_path / "missing.yaml")


def test_help_and_choices_come_from_the_dataclass() -> None:
    from lusynth.gan.params import GanParams

    helps = field_help(GanParams)
    assert helps["ngf"].startswith("generator width") and "fast paths" in helps["fast_cpu"]  # trailing and preceding comments
    assert field_choices(GanParams)["selection"] == ("nn1_embed", "nn1_pixels", "mmd_embed", "mmd_pixels", "last")
