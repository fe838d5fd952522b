"""History rollups: kept at ingest, read by window, exact at the edges, pruned after frames."""

from __future__ import annotations

import io
import random
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from rover.models import ROLLUP_FIELDS, TelemetryFrame, TelemetryRollup
from rover.selectors.history import history_resolution, telemetry_downsample
from rover.services.rollups import ROLLUP_RESOLUTIONS, floor_time, telemetry_rollups_rebuild
from rover.services.telemetry import telemetry_store, telemetry_validate
from rover.tests.factories import BASE_TIME, frame

URL = "/api/rovers/curiosity/telemetry"
SOL = timedelta(seconds=88_775)
# The dashboard's windows (static/js/charts.js) and the resolution each must read.
WINDOWS = [
    (timedelta(minutes=5), None),
    (timedelta(hours=1), 1),
    (SOL, 60),
    (30 * SOL, 3600),
]


def store(rover, frames):
    return telemetry_store(rover=rover, frames=telemetry_validate(payload=frames))[0]


def at(seconds: float) -> str:
    return (BASE_TIME + timedelta(seconds=seconds)).isoformat()


def rollup_rows(rover) -> list[tuple]:
    """Every stored bucket of the rover, comparable as plain values."""
    columns = [
        "resolution_s",
        "bucket_start",
        "frame_count",
        "seq_max",
        "received_max",
        "mode",
        *(f"{name}_{part}" for name in ROLLUP_FIELDS for part in ("count", "min", "max")),
    ]
    rows = TelemetryRollup.objects.filter(rover=rover).order_by("resolution_s", "bucket_start")
    result = []
    for row in rows.values(*columns, "offset_sum_s", *(f"{n}_sum" for n in ROLLUP_FIELDS)):
        sums = tuple(round(row[f"{n}_sum"], 6) for n in ROLLUP_FIELDS)
        result.append((*(row[c] for c in columns), round(row["offset_sum_s"], 4), *sums))
    return result


def get(client, token, since, until, points=600):
    query = {"since": since.isoformat(), "until": until.isoformat(), "points": points}
    response = client.get(URL, query, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize(("window", "resolution"), WINDOWS)
def test_window_reads_the_coarsest_fitting_resolution(window, resolution):
    assert history_resolution(span_s=window.total_seconds(), points=600) == resolution
    assert history_resolution(span_s=599, points=600) is None
    assert history_resolution(span_s=600 * 60, points=600) == 60
    assert history_resolution(span_s=600 * 3600, points=600) == 3600


@pytest.mark.parametrize(("window", "resolution"), WINDOWS)
@pytest.mark.parametrize("spike_at", ["middle", "edge"])
def test_a_single_spike_frame_shows_at_every_window(
    client, rover, viewer_token, window, resolution, spike_at
):
    # A frame every 2 s for 20 minutes, one of them a battery dip and a signal spike.
    frames = [frame(i, recorded_at=at(2 * i + 0.25), battery_pct=80.0) for i in range(600)]
    spike_seq = 300 if spike_at == "middle" else 599
    frames[spike_seq].update(battery_pct=3.5, signal_dbm=-180.0, temp_internal_c=99.0)
    store(rover, frames)
    spike_time = BASE_TIME + timedelta(seconds=2 * spike_seq + 0.25)
    # "edge": `until` falls 0.5 s after the spike, inside a partial rollup bucket.
    until = spike_time + timedelta(seconds=0.5 if spike_at == "edge" else 100)
    body = get(client, viewer_token, until - window, until)
    assert body["resolution_seconds"] == resolution
    assert len(body["frames"]) <= 600
    lows = [b for b in body["frames"] if b["battery_pct_min"] == 3.5]
    assert len(lows) == 1
    assert lows[0]["signal_dbm_min"] == -180.0 and lows[0]["temp_internal_c_max"] == 99.0
    assert all(b["battery_pct_min"] == 80.0 for b in body["frames"] if b is not lows[0])
    in_window = [
        f for f in frames if until - window <= datetime.fromisoformat(f["recorded_at"]) < until
    ]
    assert sum(b["count"] for b in body["frames"]) == len(in_window)


def test_rollup_buckets_equal_the_raw_frames_they_summarise(client, rover, viewer_token):
    """With bucket edges on whole minutes, rollups answer exactly what raw frames would."""
    rng = random.Random(12)
    seqs = list(range(1, 1200))  # recorded within the 10 minutes from BASE_TIME
    frames = [
        frame(
            seq,
            recorded_at=at(seq * 0.5 + rng.random() * 0.4),
            battery_pct=round(rng.uniform(20, 90), 3),
            signal_dbm=round(rng.uniform(-150, -60), 3),
            x_m=None if seq % 7 == 0 else round(rng.uniform(-5, 5), 3),
            mode=rng.choice(["idle", "driving", "science"]),
        )
        for seq in seqs
    ]
    store(rover, frames[:600])
    store(rover, frames[600:])
    since, until = BASE_TIME, BASE_TIME + timedelta(minutes=10)
    rolled = telemetry_downsample(rover=rover, since=since, until=until, points=10)
    assert rolled.resolution_s == 60
    by_minute: dict[int, list[dict]] = {}
    for item in frames:
        offset = datetime.fromisoformat(item["recorded_at"]) - since
        by_minute.setdefault(int(offset.total_seconds() // 60), []).append(item)
    assert len(rolled.frames) == len(by_minute) == 10
    for bucket, minute in zip(rolled.frames, sorted(by_minute), strict=True):
        expected = by_minute[minute]
        newest = max(expected, key=lambda f: f["seq"])
        assert bucket["count"] == len(expected)
        assert bucket["seq"] == newest["seq"] and bucket["mode"] == newest["mode"]
        for name in ("battery_pct", "signal_dbm", "x_m"):
            values = [f[name] for f in expected if f.get(name) is not None]
            assert bucket[f"{name}_min"] == min(values)
            assert bucket[f"{name}_max"] == max(values)
            assert bucket[name] == pytest.approx(sum(values) / len(values), abs=1e-6)
        assert bucket["temp_ambient_c"] is None and bucket["temp_ambient_c_min"] is None


def test_late_and_out_of_order_frames_land_in_their_bucket(rover):
    frames = [frame(i, recorded_at=at(i * 0.7), battery_pct=50.0 + i % 13) for i in range(400)]
    held_back = frames.pop(5)  # recorded at 3.5 s, arrives after everything else
    random.Random(3).shuffle(frames)
    # A higher seq recorded earlier, in the same second as the held-back frame.
    store(rover, [frame(1000, recorded_at=at(3.1), battery_pct=1.0, mode="safe_mode")])
    for start in range(0, len(frames), 37):
        store(rover, frames[start : start + 37])
    store(rover, [held_back])
    incremental = rollup_rows(rover)
    second = TelemetryRollup.objects.get(rover=rover, resolution_s=1, bucket_start=at(3))
    assert (second.frame_count, second.battery_pct_min, second.battery_pct_max) == (2, 1.0, 55.0)
    # The bucket's mode is the highest seq's, although seq 5 arrived last.
    assert (second.seq_max, second.mode) == (1000, "safe_mode")
    assert second.offset_sum_s == pytest.approx(0.1 + 0.5)
    minute = TelemetryRollup.objects.get(rover=rover, resolution_s=60, bucket_start=at(0))
    assert minute.frame_count == 1 + len([i for i in range(400) if i * 0.7 < 60])
    # Rebuilding from the stored frames gives the very same buckets.
    TelemetryRollup.objects.all().delete()
    telemetry_rollups_rebuild(rover=rover, slice_length=timedelta(minutes=2))
    assert rollup_rows(rover) == incremental


def test_refused_duplicates_are_not_counted(rover):
    first = store(rover, [frame(i, recorded_at=at(i * 0.1)) for i in range(10)])
    assert len(first.stored) == 10
    again = store(
        rover,
        [frame(i, recorded_at=at(i * 0.1), battery_pct=1.0) for i in (3, 4, 10, 10)],
    )
    assert again.duplicates == [3, 4, 10] and [f.seq for f in again.stored] == [10]
    for resolution in ROLLUP_RESOLUTIONS:
        rows = TelemetryRollup.objects.filter(rover=rover, resolution_s=resolution)
        assert sum(r.frame_count for r in rows) == 11
        assert sum(r.battery_pct_count for r in rows) == 11
        assert min(r.battery_pct_min for r in rows) == 1.0  # seq 10 counts once, with its value
        assert sum(r.battery_pct_sum for r in rows) == pytest.approx(10 * 80.0 + 1.0)


def test_prune_keeps_rollups_longer_than_frames(settings, client, rover, viewer_token):
    now = timezone.now()
    old_time = now - timedelta(days=40)
    old = [
        frame(i, recorded_at=(old_time + timedelta(seconds=i)).isoformat(), battery_pct=30.0)
        for i in range(120)
    ]
    ancient = [frame(500, recorded_at=(now - timedelta(days=800)).isoformat())]
    recent = [frame(1000, recorded_at=(now - timedelta(days=5)).isoformat())]
    store(rover, old + ancient + recent)
    settings.TELEMETRY_ROLLUP_RETENTION = "730d"
    out = io.StringIO()
    call_command("prune_telemetry", "--older-than", "30d", stdout=out)
    assert "Deleted 121 telemetry frame(s)" in out.getvalue()
    assert list(TelemetryFrame.objects.values_list("seq", flat=True)) == [1000]
    assert not TelemetryRollup.objects.filter(bucket_start__lt=now - timedelta(days=700)).exists()
    # The 40-day-old frames still answer from their rollups: 120 frames at 30 %.
    body = get(client, viewer_token, old_time - timedelta(hours=1), old_time + timedelta(hours=9))
    assert body["resolution_seconds"] == 60
    assert sum(b["count"] for b in body["frames"]) == 120
    assert {b["battery_pct_min"] for b in body["frames"]} == {30.0}
    # Rollups are never pruned before their frames would be...
    recent_rollups = TelemetryRollup.objects.filter(bucket_start__gt=now - timedelta(days=6))
    call_command("prune_telemetry", "--older-than", "10d", "--rollups-older-than", "1d", stdout=out)
    assert recent_rollups.count() == len(ROLLUP_RESOLUTIONS)
    # ...and an empty setting keeps them all.
    settings.TELEMETRY_ROLLUP_RETENTION = ""
    call_command("prune_telemetry", "--older-than", "12h", stdout=out)
    assert TelemetryFrame.objects.count() == 0
    assert recent_rollups.count() == len(ROLLUP_RESOLUTIONS)
    call_command("prune_telemetry", "--older-than", "12h", "--rollups-older-than", "12h")
    assert TelemetryRollup.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_migration_builds_rollups_for_frames_stored_before_it():
    executor = MigrationExecutor(connection)
    target = next(key for key in executor.loader.graph.leaf_nodes() if key[0] == "rover")
    node = target
    while not node[1].endswith("_telemetryrollup"):
        node = next(p for p in executor.loader.graph.node_map[node].parents if p[0] == "rover")
    parent = next(p for p in executor.loader.graph.node_map[node].parents if p[0] == "rover")
    executor.migrate([parent])
    old_apps = executor.loader.project_state(parent).apps
    rover = old_apps.get_model("rover", "Rover").objects.create(slug="spirit", name="Spirit")
    OldFrame = old_apps.get_model("rover", "TelemetryFrame")
    OldFrame.objects.bulk_create(
        OldFrame(
            rover=rover,
            seq=i,
            ingest_id=i,
            recorded_at=BASE_TIME + timedelta(seconds=i * 0.5),
            battery_pct=60.0 + i,
            signal_dbm=-80.0,
        )
        for i in range(10)
    )
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    rows = TelemetryRollup.objects.filter(rover_id=rover.pk)
    assert {r.resolution_s for r in rows} == set(ROLLUP_RESOLUTIONS)
    minute = rows.get(resolution_s=60)
    assert (minute.frame_count, minute.battery_pct_min, minute.battery_pct_max) == (10, 60.0, 69.0)
    assert rows.filter(resolution_s=1).count() == 5


def test_rebuild_command_recomputes_what_ingest_keeps(rover):
    store(rover, [frame(i, recorded_at=at(i * 3.3)) for i in range(50)])
    kept = rollup_rows(rover)
    TelemetryRollup.objects.filter(resolution_s=60).delete()
    TelemetryRollup.objects.filter(resolution_s=1).update(frame_count=999)
    out = io.StringIO()
    call_command("rebuild_telemetry_rollups", "--rover", "curiosity", stdout=out)
    assert "curiosity: rollups rebuilt from 50 frame(s)" in out.getvalue()
    assert rollup_rows(rover) == kept
    with pytest.raises(CommandError):
        call_command("rebuild_telemetry_rollups", "--rover", "spirit")


def test_prune_deletes_frames_in_whole_buckets(rover, monkeypatch):
    """A rollup bucket never keeps only part of its frames, so rebuilds stay exact."""
    coarsest = max(ROLLUP_RESOLUTIONS)
    now = floor_time(timezone.now(), coarsest) + timedelta(seconds=30)
    monkeypatch.setattr(timezone, "now", lambda: now)
    minute = now - timedelta(days=30, seconds=30)  # where the cutoff falls
    frames = [
        frame(i, recorded_at=(minute + timedelta(seconds=10 * i - 10)).isoformat())
        for i in range(6)
    ]
    store(rover, frames)
    call_command("prune_telemetry", "--older-than", "30d", stdout=io.StringIO())
    # Only the frame of the bucket before goes; those from `minute` on stay, although
    # the first three are older than 30 days.
    assert sorted(TelemetryFrame.objects.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    rebuilt = rollup_rows(rover)
    telemetry_rollups_rebuild(rover=rover)
    assert rollup_rows(rover) == rebuilt


def test_long_windows_read_hours_and_fill_the_ends_from_finer_levels(rover):
    # A frame every 30 s for 5 hours from 12:00:00.25, one spike at 14:17:30.25.
    frames = [frame(i, recorded_at=at(30 * i + 0.25), signal_dbm=-90.0) for i in range(600)]
    frames[275]["signal_dbm"] = -199.0
    store(rover, frames)
    since = BASE_TIME - timedelta(days=30) + timedelta(seconds=0.5)
    until = BASE_TIME + timedelta(hours=4, minutes=31, seconds=7.3)
    result = telemetry_downsample(rover=rover, since=since, until=until, points=600)
    assert result.resolution_s == 3600
    expected = [f for f in frames if datetime.fromisoformat(f["recorded_at"]) < until]
    assert sum(b["count"] for b in result.frames) == len(expected) == 543
    assert [b["signal_dbm_min"] for b in result.frames].count(-199.0) == 1
    assert max(b["seq"] for b in result.frames) == 542


@pytest.mark.django_db(transaction=True)
def test_rebuild_and_backfill_skip_rows_no_read_can_load(rover):
    from rover.services.rollups import telemetry_rollups_backfill
    from rover.tests.test_unreadable_rows import insert_frames

    store(rover, [frame(i, recorded_at=at(i * 1.5)) for i in range(20)])
    kept = rollup_rows(rover)
    insert_frames(rover, first_seq=100)
    telemetry_rollups_rebuild(rover=rover)
    assert rollup_rows(rover) == kept
    TelemetryRollup.objects.all().delete()
    telemetry_rollups_backfill()
    assert rollup_rows(rover) == kept
