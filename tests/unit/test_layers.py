from tests.layers import ALLOWED, violations


def test_imports_flow_one_way():
    assert violations() == []


def test_a_core_module_importing_the_job_is_caught(tmp_path):
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    (tmp_path / "datadominion" / "bad.py").write_text("def f():\n    from emr_jobs import summarise\n")
    (tmp_path / "lambdas" / "bad.py").write_text("import infra.stacks\n")
    assert violations(tmp_path) == ["datadominion/bad.py:2: datadominion must not import emr_jobs",
                                    "lambdas/bad.py:1: lambdas must not import infra.stacks"]


def test_a_test_importing_another_test_module_or_a_conftest_is_caught(tmp_path):
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    (tmp_path / "tests" / "support").mkdir(parents=True)
    (tmp_path / "tests" / "test_a.py").write_text("from tests.integration.test_engine import step_of\n")
    (tmp_path / "tests" / "test_b.py").write_text("def f():\n    from tests.conftest import REPO\n")
    (tmp_path / "tests" / "test_c.py").write_text("from tests.support.steps import step_of\n")
    assert violations(tmp_path) == [
        "tests/test_a.py:1: import tests.integration.test_engine: shared test helpers belong in tests/support",
        "tests/test_b.py:2: import tests.conftest: shared test helpers belong in tests/support"]
