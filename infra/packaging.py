"""Build the deployable assets without Docker: wheels for the target platform via pip.

    build/lambda-asset/       Lambda code: lambdas/ + datadominion/ + lambdas/requirements.txt
    build/job/                EMR job: entrypoint.py, datadominion-job.zip, job-deps.zip

Dependency folders are cached by a hash of (requirements, Python version, platform), so a
rebuild only copies the product code.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterable, List, Sequence

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
LAMBDA_PYTHON = "3.14"
JOB_PYTHON = "3.9"  # EMR 7.12's default Python (job code stays importable on it)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
_CODE_EXCLUDES = shutil.ignore_patterns("__pycache__", "*.pyc")


class PackagingError(RuntimeError):
    pass


def install_dependencies(requirements: Path, python_version: str, platforms: Sequence[str] = PLATFORMS) -> Path:
    """pip-install ``requirements`` for the target into a cached folder; returns the folder."""
    text = requirements.read_text()
    digest = hashlib.sha256(f"{text}|{python_version}|{','.join(platforms)}".encode()).hexdigest()[:16]
    target = BUILD / "deps" / f"{requirements.parent.name}-py{python_version}-{digest}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--target", str(target), "--python-version", python_version, "--implementation", "cp",
               "--only-binary=:all:", "-r", str(requirements)]
    for platform in platforms:
        command += ["--platform", platform]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise PackagingError(f"pip could not install {requirements} for Python {python_version}:\n"
                             f"{completed.stderr[-3000:]}")
    (target / ".complete").write_text(digest)
    return target


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, ignore=_CODE_EXCLUDES, dirs_exist_ok=True)


def build_lambda_asset(output: Path = BUILD / "lambda-asset", python_version: str = LAMBDA_PYTHON) -> Path:
    deps = install_dependencies(ROOT / "lambdas" / "requirements.txt", python_version)
    shutil.rmtree(output, ignore_errors=True)
    _copy_tree(deps, output)
    (output / ".complete").unlink(missing_ok=True)
    for package in ("datadominion", "lambdas"):
        _copy_tree(ROOT / package, output / package)
    size = folder_size(output)
    if size > LAMBDA_UNZIPPED_LIMIT:
        raise PackagingError(f"Lambda asset {output} is {size / 2**20:.0f} MiB unzipped; "
                             f"the limit is {LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB")
    return output


def _zip(paths: Iterable[Path], base: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(paths):
            if path.is_file() and "__pycache__" not in path.parts:
                out.write(path, path.relative_to(base).as_posix())


def build_job_assets(output: Path = BUILD / "job", python_version: str = JOB_PYTHON) -> Path:
    """The EMR Serverless job: entry point, product code zip (--py-files) and deps zip (spark.archives)."""
    deps = install_dependencies(ROOT / "emr_jobs" / "requirements.txt", python_version)
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    shutil.copy(ROOT / "emr_jobs" / "entrypoint.py", output / "entrypoint.py")
    code: List[Path] = [p for package in ("datadominion", "emr_jobs") for p in (ROOT / package).rglob("*.py")]
    _zip(code, ROOT, output / "datadominion-job.zip")
    _zip([p for p in deps.rglob("*") if p.name != ".complete"], deps, output / "job-deps.zip")
    return output


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description="build the Lambda and EMR job assets (no Docker)")
    parser.parse_args(list(argv) or sys.argv[1:])
    lambda_asset = build_lambda_asset()
    job = build_job_assets()
    print(f"lambda asset: {lambda_asset} ({folder_size(lambda_asset) / 2**20:.0f} MiB unzipped)")
    print(f"job assets:   {job} ({folder_size(job) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
