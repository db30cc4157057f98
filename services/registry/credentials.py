"""Private-registry credentials, sealed at rest with the operator's key.

A task's ``username`` and ``password`` are stored together as one Fernet token
(AES-128-CBC + HMAC-SHA256) in ``tasks.credentials``; only the registry holds
the key (config ``CREDENTIALS_KEY``, env ``STEVEDORE_CREDENTIALS_KEY``) and
opens them, to pull, or to answer a runner's ``pull_credentials``.  Several
comma-separated keys may be given: the first seals, any of them opens (key
rotation).  Without a key nothing is derived: tasks with credentials are
refused and the operator is told to set one.
"""
import json
import logging

from cryptography.fernet import InvalidToken
from nameko.extensions import DependencyProvider

from shared.errors import Unavailable
from shared.sealing import load_keys  # noqa: F401 -- also this module's name (tests, callers)
from shared.settings import settings_of

log = logging.getLogger(__name__)

NO_KEY = ("private registries are disabled: the operator must set STEVEDORE_CREDENTIALS_KEY "
          "(generate one with: python -c 'from cryptography.fernet import Fernet; "
          "print(Fernet.generate_key().decode())')")


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be opened with the configured key(s)."""


class Vault:
    """What a worker gets: seal and open credentials."""

    def __init__(self, fernet, problem):
        self.fernet = fernet
        self.problem = problem

    def seal(self, credentials):
        """The token to store for ``{"username", "password"}``; Unavailable without a usable key."""
        if self.fernet is None:
            raise Unavailable(self.problem, "password")
        return self.fernet.encrypt(json.dumps(credentials).encode()).decode()

    def open(self, token):
        """The ``{"username", "password"}`` sealed in ``token``."""
        if self.fernet is None:
            raise CredentialsUnreadable(self.problem)
        try:
            return json.loads(self.fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise CredentialsUnreadable(
                "the stored registry credentials cannot be decrypted with STEVEDORE_CREDENTIALS_KEY "
                "(was the key changed? keep the old key after the new one while rotating)") from exc


class CredentialVault(DependencyProvider):
    def setup(self):
        raw = settings_of(self.container).credentials_key
        self.problem = NO_KEY
        try:
            self.fernet = load_keys(raw)
        except ValueError:
            self.fernet = None
            self.problem = ("private registries are disabled: STEVEDORE_CREDENTIALS_KEY is not a valid "
                            "Fernet key (32 url-safe base64-encoded bytes)")
            log.error(self.problem)
        if self.fernet is None and not raw:
            log.warning("STEVEDORE_CREDENTIALS_KEY is not set: tasks with registry credentials are refused")

    def get_dependency(self, worker_ctx):
        return Vault(self.fernet, self.problem)
