"""A runner's reports of several slots go as one message (services/runner/reporting.py ``ReportBatches``):
within a short window, bounded in count and bytes, each sender told what became of its own."""
import eventlet
import pytest
from nameko.amqp.publish import UndeliverableMessage

from services.runner.reporting import ReportBatches


class Broker:
    """A publish that notes each message's reports (taking ``delay`` to confirm, failing while ``down``)."""

    def __init__(self, delay=0.0):
        self.delay, self.down, self.messages = delay, False, []
        self.unbound = False  # no queue for a batch (a scheduler from before): it comes back
        self.singles = []  # (event, detail id) of each report sent alone

    def publish(self, reports):
        eventlet.sleep(self.delay)
        if self.down:
            raise ConnectionError("broker away")
        if self.unbound:
            raise UndeliverableMessage()
        self.messages.append([item["report"]["detail_id"] for item in reports])

    def single(self, event, report):
        self.singles.append((event, report["detail_id"]))


def send_all(batches, broker, ids, event="execution_finished", logs=None, single=None):
    report = (lambda i: {"detail_id": i, "logs": logs}) if logs else (lambda i: {"detail_id": i})
    return [eventlet.spawn(batches.send, event, report(i), broker.publish, single) for i in ids]


def test_reports_made_within_the_window_go_as_one_message_in_the_order_they_came():
    broker = Broker()
    threads = send_all(ReportBatches(window=0.05, most=64), broker, ["a", "b", "c"])
    assert [thread.wait() for thread in threads] == [None, None, None]
    assert broker.messages == [["a", "b", "c"]]


def test_a_report_alone_waits_no_longer_than_the_window():
    broker, clock = Broker(), eventlet.hubs.get_hub().clock
    began = clock()
    ReportBatches(window=0.05, most=64).send("execution_started", {"detail_id": "a"}, broker.publish)
    assert broker.messages == [["a"]] and 0.04 <= clock() - began < 0.5


def test_a_full_message_goes_at_once_and_the_rest_make_the_next():
    broker, clock = Broker(), eventlet.hubs.get_hub().clock
    began = clock()
    threads = send_all(ReportBatches(window=5.0, most=3), broker, ["a", "b", "c"])
    [thread.wait() for thread in threads]
    assert broker.messages == [["a", "b", "c"]] and clock() - began < 1.0  # not the 5 s window
    batches = ReportBatches(window=0.01, most=2)
    [thread.wait() for thread in send_all(batches, broker, ["d", "e", "f", "g", "h"])]
    assert broker.messages[1:] == [["d", "e"], ["f", "g"], ["h"]]


def test_reports_made_while_a_message_is_published_make_the_next_one():
    broker = Broker(delay=0.05)
    batches = ReportBatches(window=0.001, most=64)
    first = send_all(batches, broker, ["a", "b"])
    eventlet.sleep(0.02)  # the first message's publish is under way
    later = send_all(batches, broker, ["c", "d", "e"])
    [thread.wait() for thread in first + later]
    assert broker.messages == [["a", "b"], ["c", "d", "e"]]


def test_a_message_holds_output_up_to_its_byte_bound_and_a_larger_report_goes_alone():
    broker = Broker()
    batches = ReportBatches(window=0.02, most=64, max_bytes=250)
    [thread.wait() for thread in send_all(batches, broker, ["a", "b", "c"], logs={"stdout": "x" * 100})]
    assert broker.messages == [["a", "b"], ["c"]]
    big = ReportBatches(window=0.02, most=64, max_bytes=50)
    [thread.wait() for thread in send_all(big, broker, ["d", "e"], logs={"stdout": "x" * 100})]
    assert broker.messages[2:] == [["d"], ["e"]]


def test_a_failed_publish_raises_in_every_sender_of_its_message_and_the_next_goes_on():
    broker = Broker()
    broker.down = True
    batches = ReportBatches(window=0.02, most=64)
    threads = send_all(batches, broker, ["a", "b", "c"])
    for thread in threads:
        with pytest.raises(ConnectionError):
            thread.wait()
    broker.down = False
    batches.send("execution_finished", {"detail_id": "d"}, broker.publish)
    assert broker.messages == [["d"]] and batches.messages == 2


def test_each_item_says_which_event_it_would_have_been():
    seen = []
    batches = ReportBatches(window=0.01, most=64)
    eventlet.spawn(batches.send, "execution_started", {"detail_id": "a"}, seen.extend)
    eventlet.sleep(0)  # the start is made first
    batches.send("execution_finished", {"detail_id": "a"}, seen.extend)
    assert seen == [{"event": "execution_started", "report": {"detail_id": "a"}},
                    {"event": "execution_finished", "report": {"detail_id": "a"}}]


def test_a_message_no_queue_takes_goes_again_as_single_events_and_so_do_the_next_reports_for_a_while():
    broker = Broker()
    broker.unbound = True
    batches = ReportBatches(window=0.02, most=64, unrouted_pause=0.5)
    [thread.wait() for thread in send_all(batches, broker, ["a", "b", "c"], single=broker.single)]
    assert broker.messages == [] and batches.unrouted == 1
    assert sorted(broker.singles) == [("execution_finished", "a"), ("execution_finished", "b"),
                                      ("execution_finished", "c")]
    batches.send("execution_started", {"detail_id": "d"}, broker.publish, broker.single)
    assert broker.singles[-1] == ("execution_started", "d") and batches.messages == 1  # no batch tried

    broker.unbound = False  # the schedulers upgraded: after the pause, reports are coalesced again
    eventlet.sleep(0.5)
    [thread.wait() for thread in send_all(batches, broker, ["e", "f"], single=broker.single)]
    assert broker.messages == [["e", "f"]] and len(broker.singles) == 4


def test_reports_waiting_while_a_message_came_back_go_as_single_events_without_another_try():
    broker = Broker(delay=0.05)
    broker.unbound = True
    batches = ReportBatches(window=0.001, most=64, unrouted_pause=60)
    first = send_all(batches, broker, ["a"], single=broker.single)
    eventlet.sleep(0.02)  # the first message's publish is under way
    later = send_all(batches, broker, ["b", "c"], single=broker.single)
    [thread.wait() for thread in first + later]
    assert sorted(detail for _, detail in broker.singles) == ["a", "b", "c"] and batches.messages == 1


def test_without_a_single_event_to_fall_back_on_a_message_no_queue_takes_raises_in_its_senders():
    broker = Broker()
    broker.unbound = True
    with pytest.raises(UndeliverableMessage):
        ReportBatches(window=0.01, most=64).send("execution_finished", {"detail_id": "a"}, broker.publish)
