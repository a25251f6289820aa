"""Build the deployable assets without Docker: wheels for the target platform via pip.

    build/lambda-asset/       Lambda code: lambdas/ + datadominion/ + lambdas/requirements.txt
    build/job/                EMR job: entrypoint.py, datadominion-job.zip, job-deps.zip

What is installed is the lock file beside each requirements file (``requirements.lock``:
every transitive dependency pinned, resolved for the target interpreter and platform), so an
asset is reproducible; ``make lock`` re-resolves it. Dependency folders are cached by a hash
of (lock, Python version, platform), so a rebuild only copies the product code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, List, Sequence

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
LAMBDA_PYTHON = "3.14"
JOB_PYTHON = "3.9"  # EMR 7.12's default Python (job code stays importable on it)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LAMBDA_REQUIREMENTS = ROOT / "lambdas" / "requirements.txt"
JOB_REQUIREMENTS = ROOT / "emr_jobs" / "requirements.txt"
# Lambda python3.14 and EMR 7.x both run on Amazon Linux 2023: glibc 2.34.
RUNTIME_GLIBC = (2, 34)
_CODE_EXCLUDES = shutil.ignore_patterns("__pycache__", "*.pyc")


class PackagingError(RuntimeError):
    pass


def lock_file(requirements: Path) -> Path:
    return requirements.with_suffix(".lock")


def _target(python_version: str, platforms: Sequence[str]) -> List[str]:
    options = ["--python-version", python_version, "--implementation", "cp", "--only-binary=:all:"]
    for platform in platforms:
        options += ["--platform", platform]
    return options


def write_lock(requirements: Path, python_version: str, platforms: Sequence[str] = PLATFORMS) -> Path:
    """Resolve ``requirements`` for the target and pin every package it installs."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        completed = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--dry-run",
             "--ignore-installed", "--report", str(report), "--target", str(Path(scratch) / "t"),
             *_target(python_version, platforms), "-r", str(requirements)], capture_output=True, text=True)
        if completed.returncode != 0:
            raise PackagingError(f"pip could not resolve {requirements}:\n{completed.stderr[-3000:]}")
        pins = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}"
                      for i in json.loads(report.read_text())["install"])
    lock = lock_file(requirements)
    lock.write_text(f"# Resolved from {requirements.name} for CPython {python_version} {', '.join(platforms)}.\n"
                    "# Regenerate with `make lock`; the asset installs exactly these (--no-deps).\n"
                    + "\n".join(pins) + "\n")
    return lock


def locked_pins(requirements: Path) -> List[str]:
    lock = lock_file(requirements)
    if not lock.is_file():
        raise PackagingError(f"{lock} is missing: run 'make lock'")
    return [line.strip() for line in lock.read_text().splitlines() if line.strip() and not line.startswith("#")]


def install_dependencies(requirements: Path, python_version: str, platforms: Sequence[str] = PLATFORMS) -> Path:
    """pip-install the lock of ``requirements`` for the target into a cached folder; returns it."""
    text = "\n".join(locked_pins(requirements))
    digest = hashlib.sha256(f"{text}|{python_version}|{','.join(platforms)}".encode()).hexdigest()[:16]
    target = BUILD / "deps" / f"{requirements.parent.name}-py{python_version}-{digest}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--no-deps", "--target", str(target), *_target(python_version, platforms),
               "-r", str(lock_file(requirements))]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise PackagingError(f"pip could not install {requirements} for Python {python_version}:\n"
                             f"{completed.stderr[-3000:]}")
    (target / ".complete").write_text(digest)
    return target


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, ignore=_CODE_EXCLUDES, dirs_exist_ok=True)


def build_lambda_asset(output: Path = BUILD / "lambda-asset", python_version: str = LAMBDA_PYTHON) -> Path:
    deps = install_dependencies(LAMBDA_REQUIREMENTS, python_version)
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
    deps = install_dependencies(JOB_REQUIREMENTS, python_version)
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
    parser.add_argument("--lock", action="store_true", help="re-resolve both lock files instead")
    if parser.parse_args(list(argv) or sys.argv[1:]).lock:
        for requirements, version in ((LAMBDA_REQUIREMENTS, LAMBDA_PYTHON), (JOB_REQUIREMENTS, JOB_PYTHON)):
            print(f"locked {write_lock(requirements, version)}")
        return 0
    lambda_asset = build_lambda_asset()
    job = build_job_assets()
    print(f"lambda asset: {lambda_asset} ({folder_size(lambda_asset) / 2**20:.0f} MiB unzipped)")
    print(f"job assets:   {job} ({folder_size(job) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
