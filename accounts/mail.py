"""Mail sent after the answer, one at a time: a slow or dead mail server never delays a request.

A password reset mailed inside the request made the answer to a known address
as slow as the mail server, and an unknown address's answer fast: anyone could
tell which addresses have an account. Sending here, on one background thread,
makes both answers the same, and a mail server that never answers holds one
thread instead of every worker thread (EMAIL_TIMEOUT still ends each try).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.core.mail import EmailMessage

logger = logging.getLogger(__name__)

# Mails waiting at most: past it (a flood of reset requests) new ones are dropped.
MAX_PENDING = 100

_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")
_pending = threading.BoundedSemaphore(MAX_PENDING)


def mail_send_later(message: EmailMessage, *, purpose: str) -> bool:
    """Queue `message` for sending; return False (and log) if too many are waiting."""
    if not _pending.acquire(blocking=False):
        logger.warning("Dropped a %s mail: %d mails are waiting already", purpose, MAX_PENDING)
        return False
    _sender.submit(_send, message, purpose)
    return True


def _send(message: EmailMessage, purpose: str) -> None:
    try:
        message.send()
    except Exception:
        # Without the address: who asked for a reset is nobody's business in the logs.
        logger.exception("Could not send a %s mail", purpose)
    finally:
        _pending.release()


def mail_drain(timeout: float = 30) -> None:
    """Wait until every mail queued so far has been tried."""
    _sender.submit(lambda: None).result(timeout)
