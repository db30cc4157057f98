"""The scheduler's brief memory of READY tasks (services/scheduler/taskcache.py)."""
from services.scheduler.taskcache import TaskCache


class Registry:
    def __init__(self, status="READY"):
        self.status, self.asked = status, 0

    def get_task(self, task_id):
        self.asked += 1
        return {"task_id": task_id, "status": self.status, "digest": f"d{self.asked}"}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_ready_task_is_asked_once_until_it_expires():
    registry, clock = Registry(), Clock()
    cache = TaskCache(10, clock)
    assert cache.get("t", registry.get_task)["digest"] == "d1"
    clock.now += 9.9
    assert cache.get("t", registry.get_task)["digest"] == "d1"
    assert registry.asked == 1
    clock.now += 0.2
    assert cache.get("t", registry.get_task)["digest"] == "d2"


def test_a_task_not_ready_is_asked_every_time():
    registry = Registry("IMPORTING")
    cache = TaskCache(10, Clock())
    cache.get("t", registry.get_task)
    cache.get("t", registry.get_task)
    assert registry.asked == 2


def test_forgotten_when_the_registry_says_it_changed():
    registry = Registry()
    cache = TaskCache(10, Clock())
    cache.get("t", registry.get_task)
    cache.get("u", registry.get_task)
    cache.forget("t")
    assert cache.get("t", registry.get_task)["digest"] == "d3"
    assert cache.get("u", registry.get_task)["digest"] == "d2"  # the others are kept


def test_an_answer_that_crossed_a_forget_is_not_kept():
    registry = Registry()
    cache = TaskCache(10, Clock())

    def answer_then_hear_of_a_reimport(task_id):
        task = registry.get_task(task_id)   # the old digest ...
        cache.forget(task_id)               # ... while the registry's event arrives
        return task

    assert cache.get("t", answer_then_hear_of_a_reimport)["digest"] == "d1"
    assert cache.get("t", registry.get_task)["digest"] == "d2"


def test_zero_seconds_turns_it_off():
    registry = Registry()
    cache = TaskCache(0, Clock())
    cache.get("t", registry.get_task)
    cache.get("t", registry.get_task)
    assert registry.asked == 2


def test_expired_entries_are_dropped_when_many():
    registry, clock = Registry(), Clock()
    cache = TaskCache(10, clock)
    for n in range(1000):
        cache.get(f"t{n}", registry.get_task)
    clock.now += 11
    cache.get("new", registry.get_task)
    assert list(cache.entries) == ["new"]
