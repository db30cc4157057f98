"""Fair share across teams (issue 18): are the weights respected over a long run, and what does a claim cost?

    .venv/bin/python -m bench.fairshare share  [--minutes 3] [--weights 1,3] [--runners 4] [--slots 1]
    .venv/bin/python -m bench.fairshare claims [--queued 100000] [--teams 1,2,10,100] [--n 500]

``share`` starts its own system (bench/backbone.py: a fresh vhost and database, a loopback registry with
the trivial image, the four services with config.yml's production timers), makes one team per weight,
each with a flood of the trivial job far longer than the run (every team always has work queued), and
counts over ``--minutes`` (after a warm-up of 20 s) the executions started per team: each team's share
of them against its weight's share.  Runs are submitted through the scheduler's ``run_task`` RPC with a
member of the team as caller, as the gateway does for a member's token.

``claims`` times the claim alone against a fresh PostgreSQL database (the scheduler's own functions, as
bench/scheduler_ops.py): ``--queued`` executions spread evenly over each number of teams of ``--teams``,
then ``--n`` claims one after another, each finished at once (so the queue and the teams' shares move as
they would), the wall milliseconds per claim printed (mean, p50, p95).
"""
import argparse
import statistics
import time
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

WARMUP = 20


def share(args):
    import docker
    from nameko.standalone.rpc import ClusterRpcProxy

    from bench.backbone import Database, Images, Stevedore, Vhost
    from shared.errors import TaskUnconfirmed
    from shared.principals import CONFIGURED

    weights = [float(w) for w in args.weights.split(",")]
    teams = {f"w{index}": weight for index, weight in enumerate(weights)}
    client = docker.from_env()
    with Vhost() as vhost, Database() as database, Images(client) as images, \
            Stevedore(vhost, database, runners=args.runners, env={"RUNNER_SLOTS": str(args.slots)}) as stevedore:
        api = stevedore.api
        task = api.register(images.ref, name=f"fairshare-{uuid.uuid4().hex[:6]}")
        for name, weight in teams.items():
            created = api.post("/team/", {"name": name, "weight": weight})
            assert created.status_code == 201, created.text
        floods = {}
        with ClusterRpcProxy({"AMQP_URI": vhost.uri}) as cluster:
            facts = cluster.registry.task_facts(task["task_id"], caller=CONFIGURED.as_dict())
            for name in teams:
                caller = {"principal": f"{name}-bench", "role": "member", "team": name}
                body = {"operation": "RUN", "times": 100000}
                try:
                    floods[name] = cluster.scheduler.run_task(task["task_id"], body, None, caller=caller)
                except TaskUnconfirmed:
                    floods[name] = cluster.scheduler.run_task(task["task_id"], body, None, facts, caller=caller)
        began = time.time()
        time.sleep(WARMUP + args.minutes * 60)
        window = (began + WARMUP, began + WARMUP + args.minutes * 60)
        started = dict(database.engine.connect().execute(text(
            "SELECT team, count(*) FROM details WHERE start >= :a AND start < :b GROUP BY team"),
            {"a": window[0], "b": window[1]}).all())
        for result in floods.values():
            api.post(f"/result/{result['result_id']}/", {"operation": "CANCEL"})
    total = sum(started.values()) or 1
    print(f"{args.runners} runners x {args.slots} slots, {args.minutes:g} min after {WARMUP}s of warm-up: "
          f"{total} executions started")
    print(f"{'team':>6} {'weight':>7} {'started':>8} {'share':>7} {'expected':>9}")
    for name, weight in teams.items():
        count = started.get(name, 0)
        print(f"{name:>6} {weight:>7g} {count:>8} {count / total:>7.3f} {weight / sum(weights):>9.3f}")


def claims(args):
    from services.scheduler import executions as ex
    from services.scheduler.models import Team
    from shared import validation
    from shared.db import psycopg2_url
    from tests.support import create_database, drop_database

    for count in [int(n) for n in args.teams.split(",")]:
        url = create_database()
        engine = create_engine(psycopg2_url(url))
        Session = sessionmaker(bind=engine, expire_on_commit=False)
        try:
            session = Session()
            for index in range(count):
                session.add(Team(name=f"t{index}", weight=1.0 + index % 3, created_at=0.0))
            session.commit()
            per_team = args.queued // count
            for index in range(count):
                params = validation.run_params({"operation": "RUN", "times": per_team}, 100000)
                result, _ = ex.create_result(session, "t" * 32, "bench", "img@sha256:1", params, team=f"t{index}")
                while ex.fan_out_batch(session, result.id):
                    pass
            session.execute(text("ANALYZE"))
            session.commit()
            walls = []
            for _ in range(args.n):
                wall = time.perf_counter()
                work = ex.claim(session, "bench-runner", 30)
                walls.append((time.perf_counter() - wall) * 1000)
                ex.mark_finished(session, {"detail_id": work["detail_id"], "attempt": work["attempt"],
                                           "runner": "bench-runner", "status": "COMPLETE", "exit_code": 0})
            walls.sort()
            print(f"{args.queued} queued over {count:>3} teams: claim {statistics.mean(walls):.2f} ms mean, "
                  f"p50 {walls[len(walls) // 2]:.2f}, p95 {walls[int(len(walls) * 0.95)]:.2f}")
            session.close()
        finally:
            engine.dispose()
            drop_database(url)


def main(argv=None):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="leg", required=True)
    one = sub.add_parser("share")
    one.add_argument("--minutes", type=float, default=3.0)
    one.add_argument("--weights", default="1,3")
    one.add_argument("--runners", type=int, default=4)
    one.add_argument("--slots", type=int, default=1)
    two = sub.add_parser("claims")
    two.add_argument("--queued", type=int, default=100000)
    two.add_argument("--teams", default="1,2,10,100")
    two.add_argument("--n", type=int, default=500)
    args = parser.parse_args(argv)
    (share if args.leg == "share" else claims)(args)


if __name__ == "__main__":
    main()
