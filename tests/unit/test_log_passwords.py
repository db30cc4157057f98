"""UrlPasswords (shared/logs.py): no password of AMQP_URI's URLs reaches a log line, whichever
of its ';'-separated URLs nameko's reconnect warning names."""
import logging

from nameko.utils import sanitize_url

from shared.logs import UrlPasswords

URI = ("pyamqp://stevedore:s3cret@rabbit1:5672/q;pyamqp://stevedore:s3cret@rabbit2:5672/q;"
       "pyamqp://stevedore:s3cret@rabbit3:5672/q")


def record(name, msg, *args):
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_every_url_of_a_multi_node_amqp_uri_is_masked_in_nameko_reconnect_warnings():
    # what nameko.messaging.QueueConsumer.on_connection_error logs: only the first URL masked
    line = "Error connecting to broker at {} ({}).\nRetrying in {} seconds.".format(
        sanitize_url(URI), "[Errno 111] ECONNREFUSED", 2)
    assert line.count("s3cret") == 2
    logged = record("nameko.messaging", line)
    assert UrlPasswords().filter(logged)
    message = logged.getMessage()
    assert "s3cret" not in message
    assert message.count("stevedore:********@rabbit") == 3 and "rabbit3:5672/q" in message


def test_urls_in_a_records_arguments_are_masked_and_other_records_left_alone():
    logged = record("kombu.connection", "connected to %s", URI)
    assert UrlPasswords().filter(logged) and "s3cret" not in logged.getMessage()
    ours = record("services.scheduler", "user:pass@ %s", "plain")
    assert UrlPasswords().filter(ours) and ours.getMessage() == "user:pass@ plain"
    no_password = record("nameko.messaging", "connected to pyamqp://rabbit1:5672/ and 127.0.0.1:5673")
    assert UrlPasswords().filter(no_password)
    assert no_password.getMessage() == "connected to pyamqp://rabbit1:5672/ and 127.0.0.1:5673"
