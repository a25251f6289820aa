import json
from pathlib import Path

import pytest

from datadominion.config import ConfigError, load_pipeline_config
from infra.environment import load_environment_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_pipeline_config_loads():
    config = load_pipeline_config(REPO / "configs" / "pipeline.json")
    assert config.history_length == 36
    assert len(config.columns) >= 30
    assert len(config.rolling_columns) == 7
    assert config.grid_columns[0].mapper_rolling_column == "payment_rating_cd_history"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_shipped_environment_configs_load(env):
    config = load_environment_config(REPO / "configs" / "environments" / f"{env}.json")
    assert config.name == env
    assert config.emr.release_label == "emr-7.12.0"


def _broken(tmp_path, mutate, name="pipeline.json"):
    data = json.loads((REPO / "configs" / "pipeline.json").read_text())
    mutate(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (lambda d: d.pop("history_length"), "history_length", "Field required"),
        (lambda d: d.update(history_length="x"), "history_length", "valid integer"),
        (lambda d: d.update(history_length=0), "history_length", "greater than or equal to 1"),
        (lambda d: d["rolling_columns"].append({"name": "nope_history", "mapper_column": "nope"}),
         "(top level)", "'nope', not a summary column"),
        (lambda d: d["rolling_columns"].append({"name": "bad", "mapper_column": "balance_am"}),
         "rolling_columns.7.name", "must end in '_history'"),
        (lambda d: d["column_transformations"].append({"column": "balance_am", "rule": "range"}),
         "column_transformations.7", "needs 'min' or 'max'"),
        (lambda d: d["columns"].update(unknown_src="x"), "(top level)", "not in source_schema"),
        (lambda d: d.update(surprise=1), "surprise", "Extra inputs are not permitted"),
        (lambda d: d["grid_columns"][0].update(placeholder="??"), "grid_columns.0.placeholder", "exactly one"),
        (lambda d: d.update(maintenance={"snapshot_retention_days": 14}), "maintenance",
         "longer than the 14-day redrive horizon"),
        (lambda d: d.update(maintenance={"max_snapshots": 1}), "maintenance.max_snapshots", "greater than or equal"),
        (lambda d: d.update(maintenance={"every_day": 1}), "maintenance.every_day", "Extra inputs"),
    ],
)
def test_broken_pipeline_config_names_file_field_and_problem(tmp_path, mutate, field, words):
    path = _broken(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    message = str(err.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert words in message


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "pipeline.json"
    path.write_text('{"history_length": 36,,}')
    with pytest.raises(ConfigError, match=r"pipeline.json: not valid JSON at line 1"):
        load_pipeline_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_pipeline_config(tmp_path / "absent.json")


def dev_config_with(tmp_path, file_name="dev.json", **changes):
    """The shipped dev config with top-level fields changed, written to ``tmp_path``."""
    data = json.loads((REPO / "configs" / "environments" / "dev.json").read_text())
    path = tmp_path / file_name
    path.write_text(json.dumps({**data, **changes}))
    return path


def test_environment_name_must_match_file(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'name': is 'dev' but the file is named 'staging'"):
        load_environment_config(dev_config_with(tmp_path, "staging.json"))


def test_environment_bad_capacity(tmp_path):
    emr = json.loads((REPO / "configs" / "environments" / "dev.json").read_text())["emr"]
    with pytest.raises(ConfigError, match=r"field 'emr.max_cpu'"):
        load_environment_config(dev_config_with(tmp_path, emr={**emr, "max_cpu": "lots"}))


def test_bootstrap_qualifier_defaults_to_cdks_and_must_be_a_valid_qualifier(tmp_path):
    assert load_environment_config(REPO / "configs" / "environments" / "dev.json").bootstrap_qualifier == "hnb659fds"
    with pytest.raises(ConfigError, match="bootstrap_qualifier"):
        load_environment_config(dev_config_with(tmp_path, bootstrap_qualifier="Not_Valid!"))


@pytest.mark.parametrize("producers, problem", [
    ([{"name": "feed", "principal_arn": "arn:aws:s3:::bucket"}], "principal_arn"),
    ([{"name": "feed", "principal_arn": "arn:aws:iam::123456789012:role/r", "batch_prefix": "a/b"}], "batch_prefix"),
    ([{"name": "feed", "principal_arn": "arn:aws:iam::123456789012:root"}] * 2, "names must be distinct"),
])
def test_bad_producers_are_refused_naming_the_field(tmp_path, producers, problem):
    with pytest.raises(ConfigError, match=problem):
        load_environment_config(dev_config_with(tmp_path, producers=producers))
