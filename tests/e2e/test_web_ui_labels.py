"""The web UI's labels (the forms' labels, chips on lists and pages, the results list's label filter), in a
real browser against the whole running system."""
import os
import uuid

import pytest

from tests.browser import Browser
from tests.support import ARTIFACTS

pytestmark = pytest.mark.e2e

SCREENSHOTS = os.path.join(ARTIFACTS, "screenshots")


@pytest.fixture(scope="module")
def ui(system):
    browser = Browser(system.url, os.path.join(system.log_dir, "browser-labels.log"), SCREENSHOTS).start()
    yield lambda scenario, **args: browser.run(scenario, token=system.token, **args)
    browser.stop()


def test_a_run_with_labels_from_the_form_shows_chips_and_the_results_list_filters_by_them(ui, api, ready_tasks):
    sweep = f"ui-{uuid.uuid4().hex[:10]}"
    other = api.run(ready_tasks["ok"]["task_id"], labels={"sweep": sweep, "project": "audio"})
    api.run(ready_tasks["ok"]["task_id"], labels={"sweep": sweep})  # no project: filtered out by "project"
    seen = ui("run_with_labels", task_id=ready_tasks["ok"]["task_id"], sweep=sweep)
    assert seen["reserved"].startswith("labels.stevedore.managed: is reserved")
    assert seen["no_value"] == '"novalue" is not key=value'  # said next to the labels box
    assert seen["page_chips"] == ["project=vision", f"sweep={sweep}"]
    result = api.get(f"/result/{seen['result_id']}/").json()
    assert result["labels"] == {"sweep": sweep, "project": "vision"}
    assert f"label=sweep%3D{sweep}" in seen["filtered_url"] and "label=project" in seen["filtered_url"]
    assert seen["filtered_ids"] == [seen["result_id"], other]  # newest first; the third has no project
    assert seen["box"] == f"sweep={sweep}, project"
    assert seen["row_chips"] == ["project=vision", f"sweep={sweep}"]
    assert seen["chip_filter_box"] == "project=vision"
    assert seen["bad_filter"].startswith("'a==b': a label value must be empty or")


def test_a_task_registered_with_labels_shows_chips_and_a_chip_filters_the_tasks(ui, api, test_images):
    team = f"ui-{uuid.uuid4().hex[:10]}"
    name = f"ui-labelled-{uuid.uuid4().hex[:6]}"
    seen = ui("register_with_labels", repository=test_images["ok"], name=name, team=team)
    assert seen["reserved"].startswith("labels.stevedore.io/x: is reserved")
    assert seen["row_chips"] == [f"team={team}", "tier=gold"]
    assert seen["filtered_names"] == [name]
    assert f"team={team}" in seen["filter_note"]
    assert seen["page_chips"] == [f"team={team}", "tier=gold"]
    assert api.get(f"/task/{seen['task_id']}/").json()["labels"] == {"team": team, "tier": "gold"}
    api.wait_task(seen["task_id"])
    assert api.delete(f"/task/{seen['task_id']}/").status_code == 204


def test_a_tes_task_is_marked_as_such_on_its_page_in_the_results_list_and_on_its_images_task(
        ui, api, ready_tasks, test_images):
    tes_id = api.run_tes(test_images["ok"], ["echo", "from tes"])
    plain = api.run(ready_tasks["ok"]["task_id"])
    seen = ui("tes_marks", tes_result_id=tes_id, plain_result_id=plain)
    assert seen["title_mark"] == "TES" and seen["row_mark"] == "TES"
    assert seen["from"].startswith("GA4GH TES")
    assert seen["plain_marks"] == 0
    assert seen["task_marks"] and set(seen["task_marks"]) == {"TES image"}


def test_a_task_name_with_a_right_to_left_override_reorders_only_itself(ui, api, test_images):
    # accepted at the door (the CLI escapes it); on a page it once reversed what followed it on the line
    name = f"ui-bidi-{uuid.uuid4().hex[:6]}-\u202egnp.exe"
    seen = ui("bidi_name", repository=test_images["ok"], name=name)
    assert seen["flash_in_order"] is True  # "Registered “…”; its image is being pulled." reads on
    title = seen["title"]
    assert title["isolated"] is True and title["badge"] >= title["right"] - 0.5, title  # the badge after the name
    api.wait_task(seen["task_id"])
    assert api.delete(f"/task/{seen['task_id']}/").status_code == 204
