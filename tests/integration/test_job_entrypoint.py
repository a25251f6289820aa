"""The EMR job's command line (what EMR Serverless runs): it writes the result the launcher's
Record reads, for a good step and for a batch it rejects."""

from __future__ import annotations

import itertools
import json

from datadominion.steps import Step
from emr_jobs.summary_job import main
from tests.support.batches import record, write_batch
from tests.support.paths import PIPELINE_CONFIG

_namespaces = itertools.count(1)


def run_main(spark, catalog_settings, tmp_path, step):
    config = json.loads(PIPELINE_CONFIG.read_text())
    config["namespace"] = f"job{next(_namespaces)}"
    config_path = tmp_path / "pipeline.json"
    config_path.write_text(json.dumps(config))
    result = tmp_path / "result.json"
    argv = ["--config", str(config_path), "--catalog", json.dumps(catalog_settings.as_args()),
            "--step", step.to_json(), "--latest-buckets", "4", "--result-uri", result.as_uri()]
    return argv, result


def test_job_writes_success_and_rejection_results(spark, catalog_settings, pipeline_config, tmp_path):
    good = write_batch(tmp_path / "landing", "2024-01", "b1", [record(pipeline_config, 1, "2024-01")],
                       pipeline_config)
    step = Step("initial", ("2024-01",), (good,), "exec-1")
    argv, result = run_main(spark, catalog_settings, tmp_path, step)
    assert main(argv) == 0
    written = json.loads(result.read_text())
    assert written["state"] == "SUCCESS" and written["step_id"] == step.step_id
    assert written["report"]["rows_ingested"] == 1

    # A step passed by reference (what the launcher does for steps too large for an argument).
    later = write_batch(tmp_path / "landing", "2024-02", "b1", [record(pipeline_config, 1, "2024-02")],
                        pipeline_config)
    by_reference = Step("forward", ("2024-02",), (later,), "exec-1")
    step_file = tmp_path / "step.json"
    step_file.write_text(by_reference.to_json())
    argv, result = run_main(spark, catalog_settings, tmp_path, by_reference)
    argv[argv.index("--step") + 1] = step_file.as_uri()
    assert main(argv) == 0
    assert json.loads(result.read_text())["step_id"] == by_reference.step_id

    # A bad batch beside a good one: the job succeeds, applies the good one and names the bad.
    bad = write_batch(tmp_path / "landing", "2024-03", "bad",
                      [record(pipeline_config, 1, "2024-03"), record(pipeline_config, 2, "2024-04")], pipeline_config)
    fine = write_batch(tmp_path / "landing", "2024-03", "fine", [record(pipeline_config, 3, "2024-03")],
                       pipeline_config)
    mixed = Step("forward", ("2024-03",), (bad, fine), "exec-1")
    argv, result = run_main(spark, catalog_settings, tmp_path, mixed)
    assert main(argv) == 0
    written = json.loads(result.read_text())
    assert written["state"] == "SUCCESS" and list(written["rejected"]) == ["2024-03/bad"]
    assert "rule 'month matches path'" in written["rejected"]["2024-03/bad"]
    assert written["report"]["batches_appended"] == ["2024-03/fine"]
