"""The base of every message between services (``shared/messages.py`` declares them): what is sent
(``wire``) and how what arrives is read (``received``)."""
import logging

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger("shared.messages")


class Message(BaseModel):
    """A message between services.  Fields it does not declare are kept: a newer sender's
    message still reaches an older receiver whole."""

    model_config = ConfigDict(extra="allow")


def wire(message, **options):
    """A message as it is sent: plain values (``model_dump``)."""
    return message.model_dump(**options)


def received(model, payload, what):
    """``payload`` read as ``model``; None (logged, never raised) when it is not one."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        log.warning("%s dropped, it is not a %s: %s (%.200r)", what, model.__name__,
                    "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]), payload)
        return None
