"""A page of a list bounded in bytes as well as in items (shared/pages.py)."""
import json

import pytest

from shared import pages


def item(n, size):
    """An item whose page JSON is exactly ``size`` bytes."""
    base = pages.item_bytes({"id": n, "pad": ""})
    return {"id": n, "pad": "x" * (size - base)}


def as_json(page):
    return json.dumps(page, separators=(",", ":"), ensure_ascii=True)


def test_a_page_stops_at_the_item_that_would_pass_the_bound():
    items = [item(n, 100) for n in range(10)]
    # [a,b,c] of 100 bytes each: 3 * 100 + 2 commas + 2 brackets = 304
    page, more = pages.cut(items, 1000, 304)
    assert [i["id"] for i in page] == [0, 1, 2] and more
    assert len(as_json(page)) == 304


def test_a_page_one_byte_short_of_its_items_holds_one_fewer():
    items = [item(n, 100) for n in range(10)]
    page, more = pages.cut(items, 1000, 303)
    assert [i["id"] for i in page] == [0, 1] and more
    assert len(as_json(page)) <= 303


def test_a_page_within_the_bound_is_every_item_and_no_more():
    items = [item(n, 100) for n in range(3)]
    page, more = pages.cut(items, 1000, 304)
    assert page == items and not more


def test_a_page_always_holds_its_first_item_whatever_its_size():
    items = [item(0, 5000), item(1, 10)]
    page, more = pages.cut(items, 1000, 1024)
    assert [i["id"] for i in page] == [0] and more


def test_one_huge_item_alone_is_a_page_with_nothing_more():
    page, more = pages.cut([item(0, 5000)], 1000, 1024)
    assert len(page) == 1 and not more


def test_the_item_limit_still_holds_within_the_bound():
    page, more = pages.cut([item(n, 20) for n in range(5)], 3, 10 ** 6)
    assert [i["id"] for i in page] == [0, 1, 2] and more
    page, more = pages.cut([item(n, 20) for n in range(3)], 3, 10 ** 6)
    assert len(page) == 3 and not more


def test_items_are_read_only_as_far_as_the_page_needs():
    read = []

    def source():
        for n in range(1000):
            read.append(n)
            yield item(n, 100)

    page, more = pages.cut(source(), 1000, 250)
    assert len(page) == 2 and more and len(read) == 3


def test_non_ascii_counts_as_its_escaped_bytes_at_least_its_utf8():
    text = {"id": 1, "pad": "\u00e9\U0001f600" * 10}
    size = pages.item_bytes(text)
    assert size >= len(json.dumps(text, ensure_ascii=False, separators=(",", ":")).encode())
    page, more = pages.cut([text, text], 10, 2 * size + 2)
    assert len(page) == 1 and more


def test_a_paged_reply_says_whether_more_exist_and_an_old_caller_gets_the_plain_list():
    items = [item(n, 100) for n in range(5)]
    assert pages.reply(iter(items), 4, 250, paged=True) == {"items": items[:2], "more": True}
    assert pages.reply(iter(items[:4]), 4, 10 ** 6, paged=True) == {"items": items[:4], "more": False}
    assert pages.reply(iter(items), 4, 250, paged=False) == items  # a gateway of before: uncut


def test_a_reply_is_read_as_a_page_in_either_shape():
    items = [{"id": n} for n in range(3)]
    assert pages.of_reply({"items": items[:1], "more": True}, 100) == (items[:1], True)
    assert pages.of_reply(items, 2) == (items[:2], True)  # a service of before: limit+1 items
    assert pages.of_reply(items, 3) == (items, False)
    assert pages.fetch_limit(100, True) == 101 and pages.fetch_limit(101, False) == 101


# ------------------------------------------------------------------ the gateway's side (services/gateway/inputs.py)

def runners_request(query_string, path="/runner/"):
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from shared.principals import Caller
    request = Request(EnvironBuilder(method="GET", path=path, query_string=query_string).get_environ())
    request.stevedore_caller = Caller("op", "admin", "default")
    return request


def test_the_gateway_answers_a_page_cut_by_bytes_with_a_link_after_its_last_item():
    from services.gateway.inputs import listing
    from stevedore_jobs.contract import RunnerListQuery
    asked = []

    def fetch(**kwargs):
        asked.append(kwargs)
        return {"items": [{"runner_id": "a"}, {"runner_id": "b"}], "more": True}

    status, headers, items = listing(runners_request("limit=1000&status=LIVE"), RunnerListQuery, fetch, "runner_id")
    assert status == 200 and items == [{"runner_id": "a"}, {"runner_id": "b"}]
    assert headers["Link"] == '</runner/?limit=1000&status=LIVE&after=b>; rel="next"'
    assert asked[0]["limit"] == 1000 and asked[0]["paged"] is True


def test_the_gateway_answers_the_last_page_without_a_link():
    from services.gateway.inputs import listing
    from stevedore_jobs.contract import RunnerListQuery
    _, headers, items = listing(runners_request("limit=5"), RunnerListQuery,
                                     lambda **kwargs: {"items": [{"runner_id": "a"}], "more": False}, "runner_id")
    assert items == [{"runner_id": "a"}] and "Link" not in headers


def test_the_gateway_lists_from_a_service_of_before_as_before():
    from nameko.exceptions import IncorrectSignature

    from services.gateway.inputs import listing
    from stevedore_jobs.contract import RunnerListQuery
    asked = []

    def fetch(**kwargs):  # a scheduler of before: no ``paged`` argument
        asked.append(kwargs)
        if "paged" in kwargs:
            raise IncorrectSignature("unexpected keyword argument 'paged'")
        return [{"runner_id": n} for n in "abc"][:kwargs["limit"]]

    _, headers, items = listing(runners_request("limit=2"), RunnerListQuery, fetch, "runner_id")
    assert items == [{"runner_id": "a"}, {"runner_id": "b"}] and "after=b" in headers["Link"]
    assert asked[-1]["limit"] == 3 and "paged" not in asked[-1]


def results_request(query_string):
    return runners_request(query_string, "/result/")


def test_the_gateway_links_the_next_page_with_the_last_items_sort_key_and_hands_it_on():
    from services.gateway.inputs import listing
    from stevedore_jobs.contract import ResultListQuery
    asked = []

    def fetch(**kwargs):
        asked.append(kwargs)
        return {"items": [{"result_id": "b" * 32, "submitted_at": 1767225600.123456}], "more": True}

    _, headers, _ = listing(results_request(f"limit=1&after={'a' * 32}&after_key=1767225601.5"), ResultListQuery,
                            fetch, "result_id", "submitted_at")
    assert headers["Link"] == f'</result/?limit=1&after={"b" * 32}&after_key=1767225600.123456>; rel="next"'
    assert asked[0]["after"] == "a" * 32 and asked[0]["after_key"] == 1767225601.5


def test_a_service_of_before_that_refuses_after_key_is_asked_again_without_it():
    from nameko.exceptions import IncorrectSignature

    from services.gateway.inputs import listing
    from stevedore_jobs.contract import ResultListQuery
    asked = []

    def fetch(**kwargs):  # a scheduler of before: paged, but no ``after_key`` argument
        asked.append(kwargs)
        if "after_key" in kwargs:
            raise IncorrectSignature("unexpected keyword argument 'after_key'")
        return {"items": [{"result_id": "c" * 32, "submitted_at": 1.0}], "more": False}

    _, _, items = listing(results_request(f"limit=1&after={'a' * 32}&after_key=2.5"), ResultListQuery, fetch,
                          "result_id", "submitted_at")
    assert items == [{"result_id": "c" * 32, "submitted_at": 1.0}]
    assert [("after_key" in kwargs, kwargs.get("paged")) for kwargs in asked] == [(True, True), (False, True)]


def test_a_cursor_is_the_id_alone_with_its_key_or_the_key_alone_and_a_bad_key_is_refused():
    from shared.errors import ValidationError

    assert pages.cursor("a" * 32, None) == "a" * 32 and pages.cursor(None, None) is None
    assert pages.cursor("a" * 32, 1.5) == ("a" * 32, 1.5) and pages.cursor(None, 1.5) == (None, 1.5)
    for after, key in (("a" * 32, float("nan")), ("a" * 32, True), ("a" * 32, [1]), (None, "x" * 201)):
        with pytest.raises(ValidationError) as refused:
            pages.cursor(after, key)
        assert refused.value.field == "after_key"
