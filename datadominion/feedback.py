"""Producer feedback: a rejected batch gets a machine-readable `_REJECTED.json` beside its
`_SUCCESS`, so the feed sees why without access to the ledger. A re-delivery goes to a new
batch folder, which this note never touches."""

from __future__ import annotations

import json
import re
from typing import Any, Dict

from datadominion.landing import BatchRef
from datadominion.ledger import BatchRecord
from datadominion.storage import BatchStorage

REJECTED_NOTE = "_REJECTED.json"
MAX_EXAMPLES = 10
_RULE = re.compile(r"rule '([^']+)'")
_EXAMPLE = "  e.g. "


def rejection_note(record: BatchRecord) -> Dict[str, Any]:
    """The note's content, from the ledger record's reason (the job's and Register's reasons
    both name the rule; the job's also give example rows)."""
    lines = record.reason.splitlines()
    rule = _RULE.search(record.reason)
    return {
        "batch_key": record.batch_key, "month": record.month, "batch_id": record.batch_id,
        "state": record.state, "rule": rule.group(1) if rule else "batch folder",
        "reason": lines[0] if lines else "", "examples": [line[len(_EXAMPLE):] for line in lines
                                                          if line.startswith(_EXAMPLE)][:MAX_EXAMPLES],
        "rejected_at": (record.updated_at or record.arrived_at).isoformat(),
        "what_to_do": "fix the batch and deliver it again under a new batch id",
    }


def leave_rejection_note(storage: BatchStorage, record: BatchRecord) -> None:
    if not record.batch_id:  # an unparsable key has no batch folder to write into
        return
    key = BatchRef(record.month, record.batch_id).prefix + REJECTED_NOTE
    storage.write_text(key, json.dumps(rejection_note(record), indent=2, sort_keys=True))
