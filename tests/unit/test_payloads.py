import typing

import pytest
from pydantic import ValidationError

from datadominion.ledger import DONE, FAILED, REJECTED
from datadominion.payloads import Plan, PlanItem, Recorded, Registration, Verdict, at


def test_paths_into_the_payloads_are_checked_field_by_field():
    assert at("$.plan.value", Plan, "count") == "$.plan.value.count"
    assert at("$.item", PlanItem, "request") == "$.item.request"
    with pytest.raises(KeyError, match="'cuont' is not a field of Plan"):
        at("$.plan.value", Plan, "cuont")
    with pytest.raises(KeyError, match="'outcome' is not a field of Registration"):
        at("$.registration.value", Registration, "outcome")


def test_the_verdicts_are_the_ledger_states_and_nothing_else_passes():
    assert set(typing.get_args(Verdict)) == {DONE, REJECTED, FAILED}
    fields = {name: "" for name in Recorded.model_fields}
    with pytest.raises(ValidationError, match="outcome"):
        Recorded(**{**fields, "outcome": "SUCCEEDED", "months": [], "batches": {}, "batch_states": {},
                    "rejected": {}, "rejected_count": 0, "report": {}})
