"""An execution's output as a download: the kept bytes of one stream, exactly.

``GET /result/{id}/detail/{detail_id}/logs/stdout/`` (or ``stderr``) answers
``application/octet-stream``; headers say how the bytes are made up:

    Stevedore-Head-Bytes     the first N bytes are the stream's first bytes
    Stevedore-Omitted-Bytes  bytes left out after them (the rest are the stream's last bytes)
    Stevedore-Total-Bytes    bytes the stream produced
    Stevedore-Status         the execution's status (output may still grow while RUNNING)
"""
import base64

from werkzeug.wrappers import Response


def raw_response(logs, stream):
    """The download response for ``stream`` of a ``get_log_bytes`` answer."""
    kept = base64.b64decode(logs.get(stream) or "")
    head = logs.get(f"{stream}_head") or 0
    total = max(logs.get(f"{stream}_total") or 0, len(kept))
    headers = {
        "Content-Disposition": f'attachment; filename="{logs["detail_id"]}-{stream}.log"',
        "X-Content-Type-Options": "nosniff",  # never shown as a page, whatever the bytes look like
        "Cache-Control": "no-store",
        "Stevedore-Head-Bytes": str(head),
        "Stevedore-Omitted-Bytes": str(total - len(kept)),
        "Stevedore-Total-Bytes": str(total),
        "Stevedore-Status": str(logs.get("status")),
        "Stevedore-Attempt": str(logs.get("logs_attempt", logs.get("attempt"))),
    }
    return Response(kept, status=200, headers=headers, content_type="application/octet-stream")
