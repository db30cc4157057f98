"""The claim's plan with runner labels and GPUs (review17): it still starts at the claimable executions' partial
index, whatever labels and GPU ids the runner sends, as it does without them (test_dependency_rules.py)."""
import json

import pytest
from sqlalchemy import text

from services.scheduler.executions.claims import CLAIM_SQL
from tests.interface.test_claim_fleet import run, session  # noqa: F401 -- the fixture


@pytest.mark.parametrize("labels, gpu_ids", [({}, []), ({"zone": "eu", "disk": "ssd"}, ["0", "1"]),
                                             ({f"k{i}": "v" for i in range(16)}, [str(i) for i in range(64)])])
def test_the_claim_with_labels_and_gpus_still_uses_its_partial_index(session, labels, gpu_ids):  # noqa: F811
    for index in range(5):
        run(session, constraints={"zone": "eu"} if index % 2 else None, gpus=index % 3 or None)
    session.execute(text("SET enable_seqscan = off"))
    plan = "\n".join(session.execute(text("EXPLAIN " + CLAIM_SQL.element.text), {
        "now": 0.0, "runner": "r", "lease_seconds": 30.0, "max_memory": None, "max_cpus": None,
        "labels": json.dumps(labels), "gpu_ids": gpu_ids, "free_gpus": len(gpu_ids), "held": None,
        "k": 8}).scalars())
    session.rollback()
    assert "ix_details_claimable" in plan, plan
