"""Prometheus metrics of the fan-out, per worker process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "mc_stream_events_published_total", "Events published to the channel layer.", ["kind"]
)
EVENTS_DELIVERED = Counter(
    "mc_stream_events_delivered_total", "Events queued to local subscribers.", ["kind"]
)
SUBSCRIBER_OVERFLOWS = Counter(
    "mc_stream_subscriber_overflows_total", "Subscribers cut off for falling behind.", ["kind"]
)
LOCAL_SUBSCRIBERS = Gauge(
    "mc_stream_local_subscribers", "Live subscribers in this worker process.", ["kind"]
)


def stream_kind(stream: str) -> str:
    """Return the label for a stream ('rover.curiosity' -> 'rover'): bounded cardinality."""
    return stream.partition(".")[0]


SUBSCRIBER_RESYNCS = Counter(
    "mc_stream_subscriber_resyncs_total",
    "Subscribers cut off to replay by id after live delivery was interrupted (Redis outage).",
    ["kind"],
)
