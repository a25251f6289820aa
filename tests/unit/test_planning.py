from datetime import datetime, timezone

import pytest

from datadominion.ledger import REGISTERED, BatchManifest, BatchRecord
from datadominion.planning import SMALL_BACKFILL_BYTES, plan_steps
from datadominion.run_input import RunInputError, parse_run_input
from datadominion.steps import Step

NOW = datetime(2025, 3, 15, tzinfo=timezone.utc)


def batch(month, batch_id="b1", size=None):
    """A registered batch; ``size`` in bytes when its manifest is known (None: registered without one)."""
    manifest = BatchManifest() if size is None else BatchManifest("file:///m.json", 1, size, "d")
    return BatchRecord(f"{month}/{batch_id}", month, batch_id, REGISTERED, f"file:///l/{month}/{batch_id}/", NOW,
                       manifest)


def shape(steps):
    return [(s.mode, list(s.months), [b.batch_key for b in s.batches]) for s in steps]


def test_nothing_pending_plans_nothing():
    assert plan_steps([], "2024-12") == []
    assert plan_steps([], None) == []


def test_empty_summary_is_one_initial_bulk_step():
    steps = plan_steps([batch("2024-02"), batch("2024-01"), batch("2024-03")], None)
    assert shape(steps) == [("initial", ["2024-01", "2024-02", "2024-03"],
                             ["2024-01/b1", "2024-02/b1", "2024-03/b1"])]


def test_forward_only_one_step_per_month_ascending():
    steps = plan_steps([batch("2025-02"), batch("2025-01")], "2024-12")
    assert shape(steps) == [("forward", ["2025-01"], ["2025-01/b1"]), ("forward", ["2025-02"], ["2025-02/b1"])]


def test_backfill_only_grouped_into_one_step():
    steps = plan_steps([batch("2023-09"), batch("2021-03"), batch("2022-06")], "2024-12")
    assert shape(steps) == [("backfill", ["2021-03", "2022-06", "2023-09"],
                             ["2021-03/b1", "2022-06/b1", "2023-09/b1"])]


def test_newest_summarised_month_itself_is_a_backfill():
    assert shape(plan_steps([batch("2024-12", "late")], "2024-12")) == [("backfill", ["2024-12"], ["2024-12/late"])]


def test_mixed_backfill_before_forward():
    steps = plan_steps([batch("2025-01"), batch("2024-06"), batch("2025-02")], "2024-12")
    assert [s.mode for s in steps] == ["backfill", "forward", "forward"]
    assert [s.months for s in steps] == [("2024-06",), ("2025-01",), ("2025-02",)]


def test_several_batches_of_one_month_merge_into_one_step():
    steps = plan_steps([batch("2025-01", "b2"), batch("2025-01", "b1")], "2024-12")
    assert shape(steps) == [("forward", ["2025-01"], ["2025-01/b1", "2025-01/b2"])]


def test_backfill_chunks():
    pending = [batch(f"2023-{m:02d}") for m in range(1, 13)] + [batch("2024-01")]
    steps = plan_steps(pending, "2024-06", max_backfill_months=5)
    assert [len(s.months) for s in steps] == [5, 5, 3]


def test_small_late_batches_are_one_backfill_step_whatever_their_months():
    months = [f"{y}-{m:02d}" for y in (2021, 2022, 2023) for m in range(1, 13)]
    steps = plan_steps([batch(m, size=40_000) for m in months] + [batch("2025-01", size=40_000)], "2024-06")
    assert [(s.mode, len(s.months)) for s in steps] == [("backfill", 36), ("forward", 1)]


def test_large_backfill_months_keep_the_month_chunks():
    months = [f"2023-{m:02d}" for m in range(1, 13)] + ["2024-01"]
    large = SMALL_BACKFILL_BYTES // 4 + 1  # five of them exceed the small budget
    steps = plan_steps([batch(m, size=large) for m in months], "2024-06", max_backfill_months=5)
    assert [len(s.months) for s in steps] == [5, 5, 3]


def test_a_step_grows_past_the_month_chunk_only_while_its_batches_stay_small():
    quarter = SMALL_BACKFILL_BYTES // 4
    sizes = {"2023-01": quarter, "2023-02": quarter, "2023-03": quarter, "2023-04": 2 * quarter, "2023-05": 10}
    steps = plan_steps([batch(m, size=size) for m, size in sizes.items()], "2024-06", max_backfill_months=2)
    assert [s.months for s in steps] == [("2023-01", "2023-02", "2023-03"), ("2023-04", "2023-05")]


def test_a_batch_of_unknown_size_counts_as_large():
    months = [f"2023-{m:02d}" for m in range(1, 8)]
    pending = [batch(m, size=10) for m in months] + [batch("2023-07", "old")]  # registered without a manifest
    steps = plan_steps(pending, "2024-06", max_backfill_months=3)
    assert [s.months for s in steps] == [("2023-01", "2023-02", "2023-03", "2023-04", "2023-05", "2023-06"),
                                         ("2023-07",)]


def test_rerun_comes_first_then_pending():
    steps = plan_steps([batch("2025-01")], "2024-12", rerun_months=["2024-03", "2024-01", "2024-03"])
    assert shape(steps) == [("rerun", ["2024-01", "2024-03"], []), ("forward", ["2025-01"], ["2025-01/b1"])]


def test_step_ids_are_stable_and_depend_on_batches():
    a = plan_steps([batch("2025-01")], "2024-12", run_id="r1")[0]
    b = plan_steps([batch("2025-01")], "2024-12", run_id="r2")[0]
    c = plan_steps([batch("2025-01", "other")], "2024-12")[0]
    assert a.step_id == b.step_id != c.step_id
    assert Step.from_json(a.to_json()) == a


@pytest.mark.parametrize("payload", [{"sweep": True}])
def test_sweep_input(payload):
    assert parse_run_input(payload, NOW).kind == "sweep"


def test_event_input():
    key = "accounts_all/rpt_as_of_mo=2025-01/b/_SUCCESS"
    event = {"detail-type": "Object Created", "detail": {"bucket": {"name": "x"}, "object": {"key": key}}}
    request = parse_run_input(event, NOW)
    assert (request.kind, request.marker_key) == ("event", "accounts_all/rpt_as_of_mo=2025-01/b/_SUCCESS")


def test_sweep_may_retry_parked_batches():
    assert parse_run_input({"sweep": True}, NOW).retry_failed is False
    assert parse_run_input({"sweep": True, "retry_failed": True}, NOW).retry_failed is True


def test_rerun_input():
    request = parse_run_input({"rerun": {"months": ["2024-03", "2024-01"]}}, NOW)
    assert request.rerun_months == ("2024-01", "2024-03")


@pytest.mark.parametrize(
    "payload, words",
    [
        ({"rerun": {"months": []}}, "rerun input must look like"),
        ({"rerun": {"months": "2024-01"}}, "rerun input must look like"),
        ({"rerun": ["2024-01"]}, "rerun input must look like"),
        ({"rerun": {"months": ["2024-13"]}}, "month 13"),
        ({"rerun": {"months": ["24-01"]}}, "not a month in the form YYYY-MM"),
        ({"rerun": {"months": ["2030-01"]}}, "in the future"),
        ({"maintain": "yes"}, 'exactly {"maintain": true}'),
        ({"maintain": True, "sweep": True}, 'exactly {"maintain": true}'),
        ({"sweep": "yes"}, "unrecognised input"),
        ({"sweep": True, "retry_failed": "yes"}, "must be true or false"),
        ({}, "unrecognised input"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_inputs_are_explained(payload, words):
    with pytest.raises(RunInputError, match=words):
        parse_run_input(payload, NOW)


def test_maintain_input_and_its_step_goes_last_under_the_same_plan():
    assert parse_run_input({"maintain": True}, NOW).kind == "maintain"
    steps = plan_steps([batch("2025-02"), batch("2024-06")], "2024-12", "exec-1", ["2024-01"],
                       maintain_reasons=["requested by the operator"])
    assert [(s.mode, list(s.months)) for s in steps] == [
        ("rerun", ["2024-01"]), ("backfill", ["2024-06"]), ("forward", ["2025-02"]), ("maintain", ["2025-02"])]
    assert steps[-1].batches == () and steps[-1].notes == ("requested by the operator",)
    assert plan_steps([], "2024-12", maintain_reasons=["due"])[0].mode == "maintain"
    assert plan_steps([], None, maintain_reasons=["due"]) == []  # nothing to maintain yet
    with pytest.raises(ValueError, match="takes no batches"):
        Step("maintain", ("2025-02",), (batch("2025-02"),))  # type: ignore[arg-type]


def test_step_rejects_inconsistent_shapes():
    with pytest.raises(ValueError, match="ascending"):
        Step("rerun", ("2024-02", "2024-01"))
    with pytest.raises(ValueError, match="needs at least one batch"):
        Step("forward", ("2024-02",))


def test_plan_only_combines_with_every_input_and_alone_previews_a_sweep():
    assert parse_run_input({"plan_only": True}, NOW).kind == "sweep"
    rerun = parse_run_input({"plan_only": True, "rerun": {"months": ["2024-01"]}}, NOW)
    assert rerun.plan_only and rerun.rerun_months == ("2024-01",)
    assert parse_run_input({"plan_only": True, "maintain": True}, NOW).kind == "maintain"
    with pytest.raises(RunInputError, match='"plan_only" must be true or false'):
        parse_run_input({"plan_only": "yes"}, NOW)


def test_a_preview_shows_each_steps_blast_radius_and_expected_cost():
    from dataclasses import replace

    from datadominion.ledger import DONE, BatchManifest, StepRecord
    from datadominion.preview import preview

    late = replace(batch("2024-03"), manifest=BatchManifest(count=1, total_bytes=6_000))
    new = replace(batch("2025-01"), manifest=BatchManifest(count=1, total_bytes=60_000))
    history = [StepRecord(f"s{n}", "r", "backfill", ("2023-01",), NOW, DONE, usage={"wall_seconds": w})
               for n, w in enumerate((10.0, 30.0, 20.0))]
    rows = {"2024-03": 1000, "2024-12": 1000}
    backfill, forward, maintain = preview([late, new], "2024-12", rows, 60.0, history, 36,
                                          maintain_reasons=["due"])
    assert (backfill["mode"], backfill["accounts_estimate"], backfill["rewrites_months"]) == \
        ("backfill", 100, "2024-03..2025-01")  # M..M+35, capped at the newest month after the plan
    assert backfill["summary_rows_estimate"] == 100 * 11
    assert backfill["expected"] == {"wall_seconds": 20.0} and backfill["history_steps"] == 3
    assert (forward["accounts_estimate"], forward["summary_rows_estimate"]) == (1000, 1000)
    assert forward["expected"] == "no history for this kind of step yet"
    assert maintain["mode"] == "maintain" and maintain["summary_rows_estimate"] == 0
    [rerun] = preview([], "2024-12", rows, 60.0, [], 36, rerun_months=["2024-03"])
    assert (rerun["accounts_estimate"], rerun["rewrites_months"]) == (1000, "2024-03..2024-12")
