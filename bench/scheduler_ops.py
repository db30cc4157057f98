"""CPU per scheduler operation, without the broker: claim, start, finish of one execution.

    .venv/bin/python -m bench.scheduler_ops [--n 500] [--fan-out 100000 --fan-out-rounds 3]

Runs the scheduler's own functions (services/scheduler/executions/) against a
fresh PostgreSQL database, one execution at a time, and prints the CPU
milliseconds of this process per operation (``time.process_time``) and the wall
milliseconds.  This is the Python side of the scheduler's per-execution work,
the part a change to those functions moves; docs/performance.md uses it.

``--fan-out TIMES`` also makes ``--fan-out-rounds`` results of TIMES executions
each, one after the other in the same table, and prints the wall seconds of
each fan-out (all its batches) and its slowest batch: PostgreSQL's insert work,
on an otherwise idle machine.
"""
import argparse
import json
import time

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from services.scheduler import executions as ex
from shared import validation
from shared.db import psycopg2_url, quiet_ping
from tests.support import create_database, drop_database


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--logs", type=int, default=22, help="bytes of stdout per execution")
    parser.add_argument("--fan-out", type=int, default=0, help="executions per fan-out to time (0: none)")
    parser.add_argument("--fan-out-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    url = create_database()
    engine = create_engine(psycopg2_url(url), pool_pre_ping=True)
    engine.dialect.do_ping = quiet_ping(engine.dialect.do_ping)
    Session = sessionmaker(bind=engine, expire_on_commit=False)
    try:
        session = Session()
        params = validation.run_params({"operation": "RUN", "times": args.n}, 100000)
        result, _ = ex.create_result(session, "t" * 32, "bench", "img@sha256:1", params)
        while ex.fan_out_batch(session, result.id):
            pass
        session.close()
        totals = {op: [0.0, 0.0] for op in ("claim", "started", "finished")}
        logs = {"stdout": "x" * args.logs, "stdout_total": args.logs, "stderr": "", "stderr_total": 0}

        def timed(op, fn):
            cpu, wall = time.process_time(), time.perf_counter()
            session = Session()
            try:
                return fn(session)
            finally:
                session.close()
                totals[op][0] += time.process_time() - cpu
                totals[op][1] += time.perf_counter() - wall

        for _ in range(args.n):
            work = timed("claim", lambda s: ex.claim(s, "bench-runner", 30))
            start = time.time()
            report = {"detail_id": work["detail_id"], "attempt": work["attempt"], "runner": "bench-runner"}
            timed("started", lambda s: ex.mark_started(s, {**report, "start": start, "container_id": "c"}))
            timed("finished", lambda s: ex.mark_finished(
                s, {**report, "status": "COMPLETE", "exit_code": 0, "start": start, "end": time.time()},
                logs=logs))
        out = {op: {"cpu_ms": round(1000 * cpu / args.n, 2), "wall_ms": round(1000 * wall / args.n, 2)}
               for op, (cpu, wall) in totals.items()}
        if args.fan_out:
            out["fan_out"] = [fan_out_once(Session, args.fan_out) for _ in range(args.fan_out_rounds)]
        print(json.dumps(out, indent=1))
    finally:
        engine.dispose()
        drop_database(url)


def fan_out_once(Session, times):
    with Session() as session:
        params = validation.run_params({"operation": "RUN", "times": times}, max(times, 100000))
        result, _ = ex.create_result(session, "t" * 32, "bench", "img@sha256:1", params)
        started, batches = time.perf_counter(), []
        while True:
            batch_started = time.perf_counter()
            if not ex.fan_out_batch(session, result.id):
                break
            batches.append(time.perf_counter() - batch_started)
        return {"times": times, "seconds": round(time.perf_counter() - started, 3),
                "slowest_batch_ms": round(1000 * max(batches), 1), "batches": len(batches)}


if __name__ == "__main__":
    main()
