"""The ?label= filter of GET /result/ over 400,000 results on the local PostgreSQL (a scratch database):
the list query of services/scheduler/executions/views.py timed, and the plans of a rare and a common filter.

    PYTHONPATH=. .venv/bin/python bench/labels_filter.py
"""
import time

from sqlalchemy import create_engine, text
from tests.support import create_database, drop_database


def main():
    url = create_database()
    try:
        from alembic.config import Config
        from alembic import command
        cfg = Config("alembic.ini")
        cfg.attributes["url"] = url
        command.upgrade(cfg, "head")
        e = create_engine(url)
        with e.begin() as c:
            c.execute(text("""
            INSERT INTO results (id, task_id, task_name, image, status, times, params, priority, submitted_at, created,
              active, n_running, n_complete, n_error, n_cancelled, n_killed, cancel_requested, reruns, finished_notified,
              n_failed, labels)
            SELECT md5(i::text), md5('t'), 't', 'img', 'COMPLETE', 1, '{}'::json, 5, 1e9 + i, 1, 0, 0, 1, 0, 0, 0, false,
              '[]'::json, true, 0,
              jsonb_build_object('sweep', 'sweep-' || (i % 1000), 'project', CASE WHEN i % 2 = 0 THEN 'vision' ELSE 'audio' END)
              || CASE WHEN i % 50000 = 7 THEN '{"rare": "yes"}'::jsonb ELSE '{}'::jsonb END
            FROM generate_series(1, 400000) i"""))
            c.execute(text("ANALYZE results"))
        from services.scheduler.executions.views import list_results
        from sqlalchemy.orm import Session
        for filters in (["sweep=sweep-7"], ["project=vision"], ["rare=yes"], ["rare"], ["sweep=sweep-7", "project=audio"], ["nope=x"]):
            with Session(e) as s:
                for _ in range(2):
                    t = time.perf_counter(); rows = list_results(s, label=filters, limit=101); took = time.perf_counter() - t
                print(filters, len(rows), f"{took*1000:.1f} ms")
        with e.connect() as c:
            plan = c.execute(text("""EXPLAIN ANALYZE SELECT id FROM results WHERE labels @> '{"rare": "yes"}' ORDER BY submitted_at DESC, id DESC LIMIT 101""")).all()
            print("\n".join(r[0] for r in plan))
            plan = c.execute(text("""EXPLAIN ANALYZE SELECT id FROM results WHERE labels @> '{"project": "vision"}' ORDER BY submitted_at DESC, id DESC LIMIT 101""")).all()
            print("\n".join(r[0] for r in plan))
        e.dispose()
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
