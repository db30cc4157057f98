"""A fan-out's detail ids, against the real PostgreSQL: unique, 32 hex digits, and in index order.

Ids in index order are consecutive keys of the details' primary key, so a fan-out
batch appends to a few B-tree pages instead of touching pages all over the index.
"""
import re

from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from services.scheduler.models import Detail
from shared import validation
from shared.db import psycopg2_url


def _ids(session, result_id):
    return session.execute(select(Detail.index, Detail.id).where(Detail.result_id == result_id)
                           .order_by(Detail.index)).all()


def test_fan_out_ids_follow_the_index_and_differ_between_runs(own_database_url):
    engine = create_engine(psycopg2_url(own_database_url))
    try:
        with sessionmaker(bind=engine, expire_on_commit=False)() as session:
            params = validation.run_params({"operation": "RUN", "times": 7000}, 100000)
            first, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params)
            second, _ = ex.create_result(session, "t" * 32, "task", "img@sha256:1", params)
            for result in (first, second):
                while ex.fan_out_batch(session, result.id, batch=5000):
                    pass
            rows = _ids(session, first.id)
            assert [index for index, _ in rows] == list(range(7000))
            ids = [detail_id for _, detail_id in rows]
            assert all(re.fullmatch(r"[0-9a-f]{32}", detail_id) for detail_id in ids)
            assert ids == sorted(ids) and len(set(ids)) == 7000
            assert ids[4660].startswith(first.id[:24]) and ids[4660].endswith("00001234")
            others = {detail_id for _, detail_id in _ids(session, second.id)}
            assert len(others) == 7000 and not others & set(ids)
            # an execution is found by its id (the API's GET /result/{id}/detail/{detail_id}/)
            assert session.get(Detail, ids[6999]).index == 6999
    finally:
        engine.dispose()
