"""The Stevedore HTTP API for Python programs and the ``stevedore`` command.

One session with the token, one error type whose message fits one line, lists
read page by page, and server-sent event streams read as they arrive.  The
typed calls (``register``, ``run``, ``result``, ...) answer the contract's
models (stevedore_jobs/contract/responses.py); ``get``/``post``/``pages`` answer
the JSON as it came.
"""
import codecs
import json
from urllib.parse import parse_qs, quote, urlsplit

import requests

from stevedore_jobs.contract import requests as rq
from stevedore_jobs.contract import responses as rs
from stevedore_jobs.contract.run import RunRequest

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT = 30.0
PAGE_MAX = rq.PAGE_MAX
# a listing read whole (no limit) stops with an error past this many items: a server that always says "next
# page" (a bug, or a hostile one) would otherwise have the command loop for ever, its memory growing
ITEMS_MAX = 1_000_000
# what a RUN may carry besides its operation and times (the contract's RUN body)
RUN_FIELDS = tuple(name for name in RunRequest.model_fields if name not in ("operation", "task_id", "times"))


class CliError(Exception):
    """Told to the user as one line on stderr; ``exit_code`` 2 for their mistakes, 1 for failures."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


class Unreachable(CliError):
    """The API could not be reached, or did not answer in time."""


class ApiError(CliError):
    """The API answered with an error: ``message (404 NOT_FOUND)``."""

    def __init__(self, status, code, message, retry_after=None):
        super().__init__(f"{message} ({status} {code})", 2 if 400 <= status < 500 else 1)
        self.status = status
        self.code = code
        self.retry_after = retry_after  # seconds, from a 429's or 503's Retry-After (None: not sent)


def _unreachable_reason(exc):
    text = str(exc)
    if isinstance(exc, requests.ConnectTimeout) or "timed out" in text:
        return "the connection timed out"
    if "Connection refused" in text:
        return "connection refused"
    if any(marker in text for marker in ("Name or service not known", "nodename nor servname",
                                         "Temporary failure in name resolution", "getaddrinfo")):
        return "unknown host"
    if "Connection reset" in text or "RemoteDisconnected" in text or "aborted" in text:
        return "the connection was closed"
    return "connection failed"


def api_error(response):
    """The error a failed response stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body and "message" in body:
        wait = response.headers.get("Retry-After", "").strip()
        return ApiError(response.status_code, body["error"], body["message"],
                        int(wait) if wait.isascii() and wait.isdigit() and len(wait) < 7 else None)
    request = response.request
    return ApiError(response.status_code, "HTTP_ERROR",
                    f"the server answered {response.reason or 'an error'} to "
                    f"{request.method} {urlsplit(request.url).path}")


class Client:
    def __init__(self, url, token=None, timeout=TIMEOUT, user_agent="stevedore-cli", team=None):
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CliError(f"the API URL {url!r} is not an http:// or https:// URL "
                           "(set STEVEDORE_URL or --url)", 2)
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["User-Agent"] = user_agent
        self.http.headers["Accept"] = "application/json"
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        if team:  # the team an admin or operator acts for (docs/api.md#tokens-roles-and-teams)
            self.http.headers["X-Stevedore-Team"] = team

    # ------------------------------------------------------------ transport

    def request(self, method, path, body=None, params=None, headers=None, stream=False, timeout=None):
        """The response to a request, or a CliError: the server's own error, or why it was not reached."""
        try:
            response = self.http.request(
                method, self.url + path, json=body, params=params, headers=headers,
                stream=stream, timeout=timeout or self.timeout)
        except requests.ConnectionError as exc:
            raise Unreachable(f"cannot reach the Stevedore API at {self.url} "
                              f"({_unreachable_reason(exc)}); is it running? Set STEVEDORE_URL or --url") from exc
        except requests.Timeout as exc:
            raise Unreachable(f"the Stevedore API at {self.url} did not answer {method} {path} "
                              "in time") from exc
        except requests.RequestException as exc:
            raise CliError(f"request to {self.url} failed: {exc}") from exc
        if response.status_code >= 400:
            error = api_error(response)
            response.close()
            raise error
        return response

    def json(self, response):
        """The JSON body of a response (None when it has none)."""
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(f"{self.url} did not answer JSON to {response.request.method} "
                           f"{urlsplit(response.request.url).path}; is it the Stevedore API?") from None

    def get(self, path, params=None):
        return self.json(self.request("GET", path, params=params))

    def post(self, path, body):
        return self.json(self.request("POST", path, body=body))

    def pages(self, path, id_field, params=None, limit=None):
        """The items of a listing, page after page, ``limit`` at most (None: all, ``ITEMS_MAX`` at most).

        A next page that would start after an item already paged past (the server repeats itself), or more
        than ``ITEMS_MAX`` items without a limit, is a ``CliError``: such a listing would never end."""
        params = dict(params or {})
        given = 0
        cursors = set()
        while limit is None or given < limit:
            size = PAGE_MAX if limit is None else min(PAGE_MAX, limit - given)
            response = self.request("GET", path, params={**params, "limit": size})
            items = self.json(response)
            yield from items
            given += len(items)
            if "next" not in response.links or not items:
                return
            if limit is None and given >= ITEMS_MAX:
                raise CliError(f"{path}: the server still lists more after {given} items; stopped (ask for "
                               "fewer: --limit)")
            # the next page starts after the last item (as the Link header says), on our own base URL; with the
            # Link's after_key, if any: where that item was, should it be deleted meanwhile
            params["after"] = items[-1][id_field]
            if params["after"] in cursors:
                raise CliError(f"{path}: the server's next page starts after {params['after']} again, a page "
                               "already read; stopped (it would list for ever)")
            cursors.add(params["after"])
            link = parse_qs(urlsplit(response.links["next"]["url"]).query)
            params.pop("after_key", None)
            if link.get("after") == [params["after"]] and link.get("after_key"):
                params["after_key"] = link["after_key"][0]

    # ------------------------------------------------------------ typed calls

    def register(self, repository, name=None, username=None, password=None, idempotency_key=None, labels=None):
        """Register an image as a task (it is pulled and pinned); the task, SUBMITTED."""
        body = {key: value for key, value in (("repository", repository), ("name", name),
                                              ("username", username), ("password", password),
                                              ("labels", labels)) if value is not None}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return rs.Task.model_validate(self.json(self.request("POST", "/task/", body=body, headers=headers)))

    def task(self, task_id):
        return rs.Task.model_validate(self.get(f"/task/{task_id}/"))

    def tasks(self, status=None, limit=None, label=None):
        """``label``: filters, ``"key=value"`` or ``"key"`` (a list: all must hold)."""
        params = {"status": status} if status else {}
        if label:
            params["label"] = [label] if isinstance(label, str) else list(label)
        return [rs.Task.model_validate(item) for item in self.pages("/task/", "task_id", params, limit)]

    def run(self, task_id, times=None, idempotency_key=None, **params):
        """RUN a task ``times`` times; ``params``: command, env, timeout, parallelism, retries,
        memory, cpus, priority, callback_url, max_failures, retry_on_exit_codes, no_retry_on_exit_codes,
        deadline, items or matrix (``times`` may then be left out), after (``[{"result_id": ...,
        "when": "COMPLETE"}]``), per_index, labels (``{"key": "value"}``).  The new result, QUEUED."""
        unknown = sorted(set(params) - set(RUN_FIELDS))
        if unknown:
            raise CliError(f"{unknown[0]}: not a RUN parameter; accepted are {', '.join(RUN_FIELDS)}", 2)
        body = {"operation": "RUN", **({"times": times} if times is not None else {}),
                **{k: v for k, v in params.items() if v is not None}}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return rs.Result.model_validate(self.json(self.request("POST", f"/task/{task_id}/", body=body,
                                                               headers=headers)))

    def result(self, result_id):
        return rs.Result.model_validate(self.get(f"/result/{result_id}/"))

    def results(self, status=None, task_id=None, limit=None, label=None):
        """``label``: filters, ``"key=value"`` or ``"key"`` (a list: all must hold)."""
        params = {key: value for key, value in (("status", status), ("task_id", task_id)) if value}
        if label:
            params["label"] = [label] if isinstance(label, str) else list(label)
        return [rs.Result.model_validate(item) for item in self.pages("/result/", "result_id", params, limit)]

    def details(self, result_id, status=None, limit=None):
        params = {"status": status} if status else {}
        return [rs.Detail.model_validate(item)
                for item in self.pages(f"/result/{result_id}/detail/", "detail_id", params, limit)]

    def detail(self, result_id, detail_id):
        return rs.Detail.model_validate(self.get(f"/result/{result_id}/detail/{detail_id}/"))

    def logs(self, result_id, detail_id):
        return rs.Logs.model_validate(self.get(f"/result/{result_id}/detail/{detail_id}/logs/"))

    def cancel(self, result_id, detail_id=None):
        if detail_id is None:
            return rs.Result.model_validate(self.post(f"/result/{result_id}/", {"operation": "CANCEL"}))
        return rs.Detail.model_validate(self.post(f"/result/{result_id}/detail/{detail_id}/",
                                                  {"operation": "CANCEL"}))

    def rerun_failed(self, result_id):
        return rs.Result.model_validate(self.post(f"/result/{result_id}/", {"operation": "RERUN_FAILED"}))

    def change(self, result_id, **changes):
        """PATCH a running result: ``parallelism`` (None: no limit) and/or ``priority``, for its
        executions not yet started.  The result, changed."""
        return rs.Result.model_validate(self.json(self.request("PATCH", f"/result/{result_id}/", body=changes)))

    def put_secret(self, name, value):
        """Create or rotate the caller's team's secret ``name``: (its metadata, created?).  Never read back."""
        response = self.request("PUT", f"/secret/{quote(name, safe='')}/", body={"value": value})
        return self.json(response), response.status_code == 201

    def secrets(self, limit=None):
        """The caller's team's secrets by name: names and times, never values."""
        return list(self.pages("/secret/", "name", limit=limit))

    def secret(self, name):
        return self.get(f"/secret/{quote(name, safe='')}/")

    def delete_secret(self, name):
        self.request("DELETE", f"/secret/{quote(name, safe='')}/").close()

    def delete_task(self, task_id):
        self.request("DELETE", f"/task/{task_id}/").close()

    def delete_result(self, result_id):
        self.request("DELETE", f"/result/{result_id}/").close()

    # ------------------------------------------------------------ tasks and results

    def find_task(self, name_or_id):
        """The task with this exact name, or this id."""
        if is_id(name_or_id):
            try:
                return self.get(f"/task/{name_or_id}/")
            except ApiError as exc:
                if exc.status != 404:
                    raise
        for task in self.pages("/task/", "task_id"):
            if task["name"] == name_or_id:
                return task
        raise CliError(f"no task named {name_or_id!r}", 2)

    def find_detail_id(self, result_id, detail):
        """The detail id for ``detail``: a detail id as it is, or an execution index looked up."""
        if not is_index(detail):
            return detail
        index = int(detail)
        times = self.get(f"/result/{result_id}/")["times"]
        if index < times:
            for item in self.pages(f"/result/{result_id}/detail/", "detail_id"):
                if item["index"] == index:
                    return item["detail_id"]
                if item["index"] > index:
                    break
        raise CliError(f"result {result_id} has no execution {index} "
                       f"(its executions are 0 to {times - 1})", 2)


def is_id(value):
    """Whether ``value`` looks like an id the API makes (32 lower-case hex digits)."""
    return len(value) == 32 and all(ch in "0123456789abcdef" for ch in value)


def is_index(value):
    return value.isdigit() and value.isascii() and not is_id(value)


# ---------------------------------------------------------------- event streams

def split_lines(chunks):
    """Text lines (without their ``\\n`` or ``\\r\\n``) from byte chunks cut anywhere."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line[:-1] if line.endswith("\r") else line
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def sse_events(lines):
    """``(event, data)`` for each server-sent event in ``lines`` (``event`` is "message" when unnamed)."""
    event, data = None, []
    for line in lines:
        if not line:
            if event is not None or data:
                yield event or "message", "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue  # a comment, e.g. a keep-alive
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if event is not None or data:
        yield event or "message", "\n".join(data)


STREAMS = ("stdout", "stderr")
END_EVENTS = frozenset({"end", "done", "eof", "finished", "close"})


def log_chunk(event, data):
    """What a log event carries: ``(stream, text)``, ``("end", info)``, or None to skip it.

    Two shapes are read: ``event: stdout`` / ``event: stderr`` with one line of
    output as data, always as it is (a job's output may be JSON of any shape), and,
    in an event of another name, a data JSON object ``{"stream": ..., "text": ...}``
    (or ``"line"``, one line without its newline).  ``end`` (or done, eof...)
    closes the stream; its data may be a JSON object about how it ended.
    """
    if event in STREAMS:
        return event, data + "\n"
    parsed = None
    if data.startswith("{"):
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
    if event in END_EVENTS:
        return "end", parsed if isinstance(parsed, dict) else {}
    if event == "error":
        message = parsed.get("message", data) if isinstance(parsed, dict) else data
        raise CliError(f"the log stream failed: {message}")
    if isinstance(parsed, dict) and ("text" in parsed or "line" in parsed):
        stream = parsed.get("stream") or (event if event in STREAMS else "stdout")
        if "line" in parsed:
            return stream, f"{parsed['line']}\n"
        return stream, str(parsed["text"])
    return None
