"""How the gateway answers a service's failure (services/gateway/http.py)."""
import json

from nameko.exceptions import RemoteError

from services.gateway.http import JsonHttp


def answer(exc):
    response = JsonHttp.response_from_exception(None, exc)
    return response.status_code, json.loads(response.get_data())


def test_a_service_whose_database_takes_no_more_connections_is_unavailable_not_failed():
    exc = RemoteError("OperationalError", "(psycopg2.OperationalError) FATAL:  sorry, too many clients already")
    assert answer(exc) == (503, {"error": "UNAVAILABLE",
                                 "message": "database: not available at the moment; try again"})


def test_a_service_whose_database_connection_broke_is_unavailable():
    assert answer(RemoteError("InterfaceError", "connection already closed"))[0] == 503


def test_a_broker_that_refuses_the_gateway_s_connection_is_unavailable():
    from kombu.exceptions import OperationalError

    assert answer(OperationalError("[Errno 111] ECONNREFUSED")) == (
        503, {"error": "UNAVAILABLE", "message": "broker: not reachable at the moment; try again"})
    assert answer(ConnectionResetError(104, "Connection reset by peer"))[0] == 503


def test_any_other_failure_of_a_service_is_a_500_that_says_nothing_of_it():
    assert answer(RemoteError("KeyError", "'task_id'")) == (
        500, {"error": "INTERNAL_ERROR", "message": "the server failed; the error is logged"})


def test_a_bug_in_the_gateway_is_a_500():
    assert answer(KeyError("task_id"))[0] == 500
