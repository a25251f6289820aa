"""The deployable assets build without Docker, fit Lambda's limit, and work on their own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from infra.packaging import LAMBDA_UNZIPPED_LIMIT, build_job_assets, build_lambda_asset, folder_size

HANDLERS = ("register", "lock", "plan", "record", "finish")


@pytest.fixture(scope="session")
def lambda_asset(tmp_path_factory) -> Path:
    return build_lambda_asset(tmp_path_factory.mktemp("asset") / "lambda")


def test_lambda_asset_for_the_runtime_fits_the_unzipped_limit(lambda_asset):
    size = folder_size(lambda_asset)
    assert 20 * 2**20 < size < LAMBDA_UNZIPPED_LIMIT, f"{size / 2**20:.0f} MiB"
    for handler in HANDLERS:
        assert (lambda_asset / "lambdas" / f"{handler}.py").is_file()
    assert (lambda_asset / "pyiceberg").is_dir() and (lambda_asset / "aws_lambda_powertools").is_dir()
    assert not (lambda_asset / "pyarrow").exists() and not (lambda_asset / "pyspark").exists()
    binaries = [p.name for p in lambda_asset.rglob("*.so") if "cpython-" in p.name]
    assert binaries and all("cpython-314-x86_64-linux-gnu" in name for name in binaries)


def test_handlers_import_and_plan_from_the_asset_alone(tmp_path, aws):
    """The same requirements built for this interpreter, imported with no site-packages: the
    handlers import, and the Plan reads a Glue table's months over fsspec without pyarrow."""
    from tests.integration.test_aws_launcher import summary_table_with_months

    summary_table_with_months(aws, ["2024-01", "2024-02"])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    asset = build_lambda_asset(tmp_path / "local-asset", python_version=version)
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(asset)!r})
        import importlib
        for name in {HANDLERS!r}:
            importlib.import_module("lambdas." + name)
        from lambdas import wiring
        newest = wiring.newest_summarised(wiring.settings())
        assert "pyarrow" not in sys.modules, "the Plan imported pyarrow"
        assert "pyspark" not in sys.modules
        print("NEWEST", newest)
    """)
    completed = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=dict(os.environ),
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "NEWEST 2024-02" in completed.stdout


def test_job_assets_hold_the_entry_point_the_code_and_its_dependencies(tmp_path):
    job = build_job_assets(tmp_path / "job")
    assert (job / "entrypoint.py").is_file()
    with zipfile.ZipFile(job / "datadominion-job.zip") as code:
        names = set(code.namelist())
    assert {"emr_jobs/summary_job.py", "datadominion/config.py", "datadominion/steps.py"} <= names
    assert not any(n.startswith(("tests/", "lambdas/", "infra/")) for n in names)
    with zipfile.ZipFile(job / "job-deps.zip") as deps:
        names = deps.namelist()
        assert any(n.startswith("pydantic/") for n in names) and any(n.startswith("pyarrow/") for n in names)
