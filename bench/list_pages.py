"""A page of GET /result/?limit=1000 as the scheduler builds it, with and without the bound in bytes
(LIST_PAGE_BYTES, shared/pages.py), on the local PostgreSQL (a scratch database): the reply's bytes, the time
to build it, and the process's peak memory (each case in a process of its own).

    PYTHONPATH=. .venv/bin/python bench/list_pages.py [--big 100] [--small 1000]

"unbounded" is the code of before: every row read at once, every item made, all of them in the reply;
"paged" is this release's: rows read 20 at a time, items added until the page's JSON would pass 4 MiB.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

from sqlalchemy import create_engine, text

from tests.support import create_database, drop_database

PARAMS_BYTES = 900_000   # a RUN near the 1 MiB body limit


def fill(url, big, small):
    from alembic import command
    from alembic.config import Config
    cfg = Config("alembic.ini")
    cfg.attributes["url"] = url
    command.upgrade(cfg, "head")
    engine = create_engine(url)
    with engine.begin() as c:
        for kind, count, size in (("big", big, PARAMS_BYTES), ("small", small, 100)):
            c.execute(text("""
            INSERT INTO results (id, task_id, task_name, image, status, times, params, priority, submitted_at, created,
              active, n_running, n_complete, n_error, n_cancelled, n_killed, cancel_requested, reruns, finished_notified,
              n_failed, labels, team)
            SELECT md5(:kind || i::text), md5('t'), 't', 'img', 'COMPLETE', 1,
              json_build_object('times', 1, 'env', json_build_object('BIG', repeat('x', :size))), 5, 1e9 + i, 1, 0, 0,
              1, 0, 0, 0, false, '[]'::json, true, 0, jsonb_build_object('kind', :kind), 'default'
            FROM generate_series(1, :count) i"""), {"kind": kind, "count": count, "size": size})
        c.execute(text("ANALYZE results"))
    engine.dispose()


def case(url, kind, mode):
    """One listing in this process: prints its figures as JSON."""
    from sqlalchemy.orm import Session

    from services.scheduler.executions import views
    from shared import pages
    engine = create_engine(url)
    with Session(engine) as session:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        if mode == "unbounded":  # the code of before: all rows in one fetch, every item in the reply
            pages.ROWS_AT_ONCE = 2000
            rows = list(views.list_results(session, label=[f"kind={kind}"], limit=1001))
            reply = [views.result_as_dict(row) for row in rows]
            items = len(reply)
        else:
            rows = views.list_results(session, label=[f"kind={kind}"], limit=1001)
            reply = pages.reply(map(views.result_as_dict, rows), 1000, pages.DEFAULT_BYTES, True)
            items = len(reply["items"])
        body = json.dumps(reply).encode()  # as kombu sends it
        took = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"kind": kind, "mode": mode, "items": items, "reply_bytes": len(body),
                      "ms": round(took * 1000, 1), "peak_rss_mb": round(peak / 1024), "rss_before_mb":
                      round(before / 1024)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=100)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case(*args.case)
        return
    url = create_database()
    try:
        fill(url, args.big, args.small)
        with open("/proc/loadavg") as fh:
            print("load:", fh.read().split()[:3])
        for kind in ("big", "small"):
            for _ in range(args.repeat):
                for mode in ("unbounded", "paged"):
                    subprocess.run([sys.executable, __file__, "--case", url, kind, mode], check=True)
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
