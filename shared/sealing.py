"""Sealing with the operator's key (``STEVEDORE_CREDENTIALS_KEY``, Fernet: AES-128-CBC + HMAC-SHA256).

Several comma-separated keys may be given: the first seals, any of them opens
(key rotation).  Without a key nothing is derived from anything else: what
needs one is refused, and the operator is told to set it.

Who holds the key and why (docs/deployment.md "Which services hold the key"):
the registry (a task's private-registry credentials: services/registry/credentials.py),
the gateway (it seals a secret's value the moment it arrives, so the value
crosses RabbitMQ sealed) and the scheduler (it opens a secret at claim time and
hands it to the runner in the claim's reply: services/scheduler/secrets.py).
"""
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from nameko.extensions import DependencyProvider

from shared.settings import settings_of

log = logging.getLogger(__name__)

KEY_HELP = ("generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'")
NO_KEY = "the operator must set STEVEDORE_CREDENTIALS_KEY (" + KEY_HELP + ")"
BAD_KEY = "STEVEDORE_CREDENTIALS_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes)"


class Unopenable(Exception):
    """A sealed token cannot be opened with the configured key(s) (or none is set)."""


def load_keys(raw):
    """A MultiFernet from comma-separated keys, None when none is set; ValueError if malformed."""
    keys = [k.strip() for k in str(raw or "").split(",") if k.strip()]
    if not keys:
        return None
    return MultiFernet([Fernet(key.encode()) for key in keys])


class Sealer:
    """Seal and open bytes with the keys; ``problem`` says why not when there are none."""

    def __init__(self, fernet, problem=None):
        self.fernet = fernet
        self.problem = problem

    @property
    def usable(self):
        return self.fernet is not None

    def seal(self, data):
        """The token (text) for ``data`` (bytes); ``Unopenable`` without a usable key."""
        if self.fernet is None:
            raise Unopenable(self.problem or NO_KEY)
        return self.fernet.encrypt(data).decode("ascii")

    def open(self, token):
        """The bytes sealed in ``token``; ``Unopenable`` when no key opens it."""
        if self.fernet is None:
            raise Unopenable(self.problem or NO_KEY)
        try:
            return self.fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError, AttributeError):
            raise Unopenable("it was sealed with another STEVEDORE_CREDENTIALS_KEY than this service's "
                             "(keep the old key after the new one while rotating)") from None


def sealer_from(raw):
    """A ``Sealer`` from the setting's raw value; a malformed key is logged and gives one without keys."""
    try:
        return Sealer(load_keys(raw), None if raw else NO_KEY)
    except ValueError:
        log.error(BAD_KEY)
        return Sealer(None, BAD_KEY)


class SealingKey(DependencyProvider):
    """The service's ``Sealer`` for ``STEVEDORE_CREDENTIALS_KEY`` (read once at start)."""

    def setup(self):
        self.sealer = sealer_from(settings_of(self.container).credentials_key)

    def get_dependency(self, worker_ctx):
        return self.sealer
