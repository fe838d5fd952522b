"""Keep the development server's access log readable while a rover streams frames."""

from __future__ import annotations

import logging
import re

# daphne's runserver access line: "HTTP POST /api/rovers/curiosity/telemetry 201 [0.01, ...]".
_ROVER_UPLINK_OK = re.compile(r"^HTTP POST /api/rovers/[^/\s]+/(?:telemetry|images) 20[01] ")


class QuietRoverUplinkFilter(logging.Filter):
    """Drop the access-log lines of accepted telemetry and image posts.

    A rover at 10 Hz would write ten of them a second and bury everything else.
    Refused posts (4xx, 5xx) and every other request are still logged; set
    LOG_ROVER_UPLINK=true to see them all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not _ROVER_UPLINK_OK.match(record.getMessage())
