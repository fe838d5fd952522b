"""Stop daphne (`runserver`) from parsing every form upload in memory before Django sees it.

Twisted's `Request.requestReceived` reads a whole `multipart/form-data` POST
into one bytes object and parses it with the `email` package into
`request.args`, which daphne never uses: a 200 MB image uplink under
`make run` peaked at 2.6 GB of RSS, and a malformed one was answered with a
bare `400` (no body) before Django could give the API's JSON error (daphne#447).
Twisted has a switch for exactly this (`parsePOSTFormSubmission=False`);
daphne just never passes it. Django parses the body itself, streaming the file
to disk. uvicorn (production) never imports daphne, so nothing changes there.
"""

from __future__ import annotations

import functools
import sys


def daphne_without_form_parsing() -> None:
    """Make daphne's requests skip Twisted's form parsing (idempotent; no-op without daphne)."""
    if "daphne.server" not in sys.modules:  # not running under daphne
        return
    from daphne.http_protocol import WebRequest

    if getattr(WebRequest.__init__, "_skips_form_parsing", False):
        return
    original = WebRequest.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    __init__._skips_form_parsing = True
    WebRequest.__init__ = __init__
