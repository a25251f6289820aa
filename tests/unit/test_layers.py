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
