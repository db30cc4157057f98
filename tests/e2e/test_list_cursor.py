"""A client pages through a list while the item its next page starts after is deleted (DELETE, or the
retention sweep): the Link header's next page goes on from where that item was (``after_key``), with no item
lost or given twice; a plain ``after=<id>`` of a deleted item is still a 404, as before."""
import re
import uuid

import pytest

pytestmark = pytest.mark.e2e

LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


def page(api, path):
    """(ids, the next page's path or None) of one page of a listing."""
    response = api.get(path)
    assert response.status_code == 200, response.text
    link = LINK.search(response.headers.get("Link", ""))
    return response.json(), link.group(1) if link else None


def test_the_next_page_goes_on_after_a_result_deleted_since_with_every_other_result_once(api, ready_tasks):
    label = f"cursor-{uuid.uuid4().hex[:8]}"
    made = [api.run(ready_tasks["ok"]["task_id"], times=1, labels={"walk": label}) for _ in range(5)]
    for result_id in made:
        assert api.wait_result(result_id)["status"] == "COMPLETE"
    newest_first = made[::-1]

    items, link = page(api, f"/result/?label=walk%3D{label}&limit=2")
    assert [r["result_id"] for r in items] == newest_first[:2] and "after_key=" in link
    gone = items[-1]["result_id"]
    assert api.delete(f"/result/{gone}/").status_code == 204
    assert api.get(f"/result/?label=walk%3D{label}&limit=2&after={gone}").status_code == 404  # as before

    seen = [r["result_id"] for r in items]
    while link:
        items, link = page(api, link)
        seen += [r["result_id"] for r in items]
    assert seen == newest_first


def test_the_next_page_of_secrets_goes_on_after_a_secret_deleted_since(api):
    prefix = f"cursor{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}_{n}" for n in range(4)]
    for name in names:
        answer = api.http.put(f"{api.base_url}/secret/{name}/", json={"value": "v"}, timeout=30)
        assert answer.status_code in (200, 201), answer.text
    try:
        # a place no secret is at: after_key goes on from it all the same (ours come first after it)
        items, link = page(api, f"/secret/?limit=1&after={prefix}&after_key={prefix}")
        assert items[0]["name"] == names[0] and link
        assert api.delete(f"/secret/{names[0]}/").status_code == 204
        seen = [items[0]["name"]]
        while link and len(seen) < len(names):
            items, link = page(api, link)
            seen += [s["name"] for s in items]
        assert seen == names
    finally:
        for name in names[1:]:
            api.delete(f"/secret/{name}/")


def test_an_after_key_that_is_not_a_time_is_a_400_naming_it(api):
    for query in (f"after={'a' * 32}&after_key=nan", f"after={'a' * 32}&after_key=soon", "after_key=-1"):
        answer = api.get(f"/result/?{query}")
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"].startswith("after_key"), answer.json()


def test_an_after_key_alone_lists_what_is_older_than_that_time(api, ready_tasks):
    label = f"older-{uuid.uuid4().hex[:8]}"
    made = [api.run(ready_tasks["ok"]["task_id"], times=1, labels={"walk": label}) for _ in range(3)]
    submitted = {r["result_id"]: r["submitted_at"] for r in page(api, f"/result/?label=walk%3D{label}")[0]}
    assert sorted(submitted) == sorted(made)
    middle = sorted(submitted.values())[1]
    items, _ = page(api, f"/result/?label=walk%3D{label}&after_key={middle!r}")
    assert [r["result_id"] for r in items] == [i for i, at in submitted.items() if at < middle]


def test_the_next_tes_page_goes_on_after_a_task_deleted_since(api, test_images):
    name = f"cursor-{uuid.uuid4().hex[:8]}"
    made = []
    for _ in range(3):
        response = api.post("/ga4gh/tes/v1/tasks", {"name": name, "executors": [
            {"image": test_images["ok"], "command": ["true"]}]})
        assert response.status_code == 200, response.text
        made.append(response.json()["id"])
    for task_id in made:
        api.wait_result(task_id)

    def tes_page(token=None):
        query = {"name_prefix": name, "page_size": 1, **({"page_token": token} if token else {})}
        response = api.get("/ga4gh/tes/v1/tasks", params=query)
        assert response.status_code == 200, response.text
        return [task["id"] for task in response.json()["tasks"]], response.json().get("next_page_token")

    seen, token = tes_page()
    assert seen == made[-1:] and token
    assert api.delete(f"/result/{seen[0]}/").status_code == 204
    while token:
        ids, token = tes_page(token)
        seen += ids
    assert seen == made[::-1]
