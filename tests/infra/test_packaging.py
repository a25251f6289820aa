"""The deployable assets build without Docker, fit Lambda's limit, and work on their own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Dict

import pytest
from packaging.utils import canonicalize_name

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
    from tests.support.aws import summary_table_with_months

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
        glue = wiring.catalog(wiring.settings())
        newest = max(wiring.summary_rows_per_month(wiring.settings(), glue))
        wiring.table_healths(wiring.settings(), glue, 2)
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
    assert not any(n.startswith(("tests/", "lambdas/", "infra/", "localmode/")) for n in names)
    with zipfile.ZipFile(job / "job-deps.zip") as deps:
        names = deps.namelist()
        assert any(n.startswith("pydantic/") for n in names) and any(n.startswith("pyarrow/") for n in names)


def _dists(folder: Path) -> Dict[str, Path]:
    """normalized distribution name==version -> its dist-info folder."""
    found = {}
    for info in folder.glob("*.dist-info"):
        meta = dict(line.split(": ", 1) for line in (info / "METADATA").read_text(errors="replace").splitlines()
                    if ": " in line and not line.startswith(" "))
        found[f"{canonicalize_name(meta['Name'])}=={meta['Version']}"] = info
    return found


def _pins(requirements: Path) -> set:
    from infra.packaging import locked_pins

    return {f"{canonicalize_name(p.split('==')[0])}=={p.split('==')[1]}" for p in locked_pins(requirements)}


def _glibc_needed(binary: Path) -> tuple:
    out = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True).stdout
    versions = [tuple(int(x) for x in v) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", out)]
    return max(versions, default=(0, 0))


@pytest.mark.parametrize("which", ["lambda", "job"])
def test_the_assets_install_exactly_their_lock_and_every_binary_fits_the_runtime(lambda_asset, tmp_path, which):
    """Reproducible (the lock pins every transitive package) and loadable where it runs: each
    wheel with native code is tagged for the runtime's CPython, and no shared object needs a
    newer glibc than Amazon Linux 2023's (Lambda python3.14 and EMR 7.x)."""
    from packaging.tags import Tag, compatible_tags, cpython_tags, parse_tag

    from infra.packaging import (
        JOB_PYTHON,
        JOB_REQUIREMENTS,
        LAMBDA_PYTHON,
        LAMBDA_REQUIREMENTS,
        RUNTIME_GLIBC,
        install_dependencies,
    )

    requirements, python = (LAMBDA_REQUIREMENTS, LAMBDA_PYTHON) if which == "lambda" else (JOB_REQUIREMENTS,
                                                                                              JOB_PYTHON)
    folder = lambda_asset if which == "lambda" else install_dependencies(requirements, python)
    dists = _dists(folder)
    assert set(dists) == _pins(requirements)
    version = tuple(int(x) for x in python.split("."))
    platforms = [f"manylinux_{RUNTIME_GLIBC[0]}_{minor}_x86_64" for minor in range(RUNTIME_GLIBC[1], 4, -1)] + [
        "manylinux2014_x86_64", "linux_x86_64"]
    supported: set = set(cpython_tags(version, platforms=platforms)) | set(compatible_tags(version,
                                                                                           platforms=platforms))
    binaries = list(folder.rglob("*.so*"))
    assert which == "lambda" or binaries  # pyarrow's libraries
    for pin, info in dists.items():
        wheel_tags = {t for line in (info / "WHEEL").read_text().splitlines() if line.startswith("Tag: ")
                      for t in parse_tag(line[5:].strip())}
        assert wheel_tags & supported, f"{pin} is tagged {sorted(map(str, wheel_tags))}, not for CPython {python}"
    abi = f"cpython-{version[0]}{version[1]}-x86_64-linux-gnu"
    for binary in binaries:
        if ".cpython-" in binary.name:
            assert abi in binary.name, binary
        assert _glibc_needed(binary) <= RUNTIME_GLIBC, (binary, _glibc_needed(binary))
    assert isinstance(next(iter(supported)), Tag)
