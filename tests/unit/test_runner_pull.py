"""A runner pulls a task's image by digest, with its credentials, and says why a pull failed."""
import docker
import pytest

from services.runner.dependencies import Executor
from services.runner.engine import PullFailed

IMAGE = "10.201.0.1:5000/team/app@sha256:" + "a" * 64
POLICY = {"default_memory": None, "pids_limit": 64, "network": "none", "grace": 1, "log_limit": 100}


class FakeImages:
    def __init__(self, present):
        self.present = present

    def get(self, ref):
        if ref not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")


class FakeApi:
    def __init__(self, images, chunks=(), refuse=None):
        self.images, self.chunks, self.refuse = images, list(chunks), refuse
        self.pulls = []

    def pull(self, name, tag=None, auth_config=None, stream=False, decode=False):
        self.pulls.append((name, tag, auth_config))
        if self.refuse:
            raise docker.errors.APIError("500 Server Error", explanation=self.refuse)
        for chunk in self.chunks:
            yield chunk
        if not any("error" in chunk for chunk in self.chunks):
            self.images.present.add(f"{name}@{tag}")


class FakeClient:
    def __init__(self, present=(), chunks=(), refuse=None):
        self.images = FakeImages(set(present))
        self.api = FakeApi(self.images, chunks, refuse)


def test_an_image_the_engine_lacks_is_pulled_by_digest_with_the_tasks_credentials():
    client = FakeClient(chunks=[{"status": "Pulling fs layer"}, {"status": "Download complete"}])
    asked = []

    def credentials():
        asked.append(True)
        return {"username": "alice", "password": "pw"}

    Executor(client, POLICY).ensure_image(IMAGE, credentials)
    assert client.api.pulls == [("10.201.0.1:5000/team/app", "sha256:" + "a" * 64,
                                 {"username": "alice", "password": "pw"})]
    assert asked == [True]


def test_an_image_already_there_is_not_pulled_and_no_credentials_are_asked():
    client = FakeClient(present=[IMAGE])
    Executor(client, POLICY).ensure_image(IMAGE, lambda: pytest.fail("credentials asked"))
    assert client.api.pulls == []


def test_an_error_inside_the_pull_stream_is_a_failed_pull_saying_why():
    client = FakeClient(chunks=[{"status": "Pulling fs layer"},
                                {"error": "Get \"http://10.201.0.1:5000/v2/\": dial tcp: i/o timeout"}])
    with pytest.raises(PullFailed, match="registry unreachable for 10.201.0.1:5000/team/app@sha256"):
        Executor(client, POLICY).ensure_image(IMAGE)


def test_a_failed_pull_ends_the_attempt_in_error_naming_the_runner_and_the_cause():
    client = FakeClient(refuse="unauthorized: authentication required")
    work = {"image": IMAGE, "detail_id": "d" * 32, "result_id": "r" * 32, "index": 0, "attempt": 1}
    outcome = Executor(client, POLICY).run(work, "host-2", on_started=lambda *a: pytest.fail("started"),
                                           should_stop=lambda: None, credentials=lambda: None)
    assert outcome["status"] == "ERROR"
    assert outcome["reason"].startswith("could not pull the image on runner host-2: "
                                        "authentication refused by the registry for " + IMAGE)
    assert outcome["start"] is None and outcome["exit_code"] is None
