"""Mail sent after the answer, one at a time: a slow or dead mail server never delays a request.

A password reset mailed inside the request made the answer to a known address
as slow as the mail server, and an unknown address's answer fast: anyone could
tell which addresses have an account. Sending here, on one background thread,
makes both answers the same, and a mail server that never answers holds one
thread instead of every worker thread (EMAIL_TIMEOUT still ends each try).

The thread is a daemon: a worker that stops does not wait for a dead mail
server (a reset mail still queued then is lost; its user asks again).
"""

from __future__ import annotations

import logging
import queue
import threading

from django.core.mail import EmailMessage

logger = logging.getLogger(__name__)

# Mails waiting at most: past it (a flood of reset requests) new ones are dropped.
MAX_PENDING = 100

# Items: (message, purpose) to send, or (None, event) to set once all before it are done.
_queue: queue.Queue[tuple[EmailMessage | None, object]] = queue.Queue(MAX_PENDING)
_sender: threading.Thread | None = None
_sender_lock = threading.Lock()


def mail_send_later(message: EmailMessage, *, purpose: str) -> bool:
    """Queue `message` for sending; return False (and log) if too many are waiting."""
    _start_sender()
    try:
        _queue.put_nowait((message, purpose))
    except queue.Full:
        logger.warning("Dropped a %s mail: %d mails are waiting already", purpose, MAX_PENDING)
        return False
    return True


def mail_drain(timeout: float = 30) -> None:
    """Wait until every mail queued so far has been tried."""
    _start_sender()
    done = threading.Event()
    _queue.put((None, done), timeout=timeout)
    if not done.wait(timeout):
        raise TimeoutError("mails still being sent")


def _start_sender() -> None:
    global _sender
    with _sender_lock:
        if _sender is None or not _sender.is_alive():
            _sender = threading.Thread(target=_send_forever, name="mail", daemon=True)
            _sender.start()


def _send_forever() -> None:
    while True:
        message, purpose = _queue.get()
        if message is None:
            purpose.set()  # a drain's marker
            continue
        try:
            message.send()
        except Exception:
            # Without the address: who asked for a reset is nobody's business in the logs.
            logger.exception("Could not send a %s mail", purpose)
