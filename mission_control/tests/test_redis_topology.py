"""The Redis variables: one server, shards, Sentinel; and where a key lives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from channels_redis.pubsub import RedisPubSubLoopLayer
from channels_redis.utils import _consistent_hash

from mission_control.redis_topology import (
    SENTINEL_SOCKET_TIMEOUT,
    RedisTopologyError,
    describe,
    hosts_from_environ,
    shard_for,
)
from testing.servers import ROOT


def test_no_redis_variables_mean_no_redis():
    assert hosts_from_environ({}) == []
    assert hosts_from_environ({"REDIS_URL": ""}) == []


def test_one_url_is_one_host_and_a_comma_separated_list_is_shards():
    assert hosts_from_environ({"REDIS_URL": "redis://a:6379/0"}) == ["redis://a:6379/0"]
    assert hosts_from_environ({"REDIS_URL": "redis://a:6379/0, rediss://b:6380/1,"}) == [
        "redis://a:6379/0",
        "rediss://b:6380/1",
    ]


def test_sentinels_and_master_names_make_one_sentinel_host_per_master():
    hosts = hosts_from_environ(
        {
            "REDIS_SENTINELS": "s1:26379, [::1]:26380",
            "REDIS_SENTINEL_MASTER": "shard-a,shard-b",
            "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
            "REDIS_PASSWORD": "master-secret",
            "REDIS_DB": "3",
        }
    )
    sentinel_kwargs = {
        "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT,
        "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
        "password": "sentinel-secret",
    }
    assert hosts == [
        {
            "sentinels": [("s1", 26379), ("::1", 26380)],
            "master_name": name,
            "sentinel_kwargs": sentinel_kwargs,
            "db": 3,
            "password": "master-secret",
        }
        for name in ("shard-a", "shard-b")
    ]


def test_a_sentinel_host_without_passwords_carries_none():
    (host,) = hosts_from_environ({"REDIS_SENTINELS": "s1:26379", "REDIS_SENTINEL_MASTER": "m"})
    assert "password" not in host and "password" not in host["sentinel_kwargs"]
    assert host["db"] == 0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"REDIS_URL": "redis://a", "REDIS_SENTINELS": "s:1", "REDIS_SENTINEL_MASTER": "m"},
            "not both",
        ),
        ({"REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINEL_MASTER needs REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "s:26379"}, "REDIS_SENTINELS needs REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINELS": "s", "REDIS_SENTINEL_MASTER": "m"}, "'s' is not host:port"),
        ({"REDIS_SENTINELS": "s:\uff12\uff16", "REDIS_SENTINEL_MASTER": "m"}, "is not host:port"),
        (
            {"REDIS_SENTINELS": "s:1", "REDIS_SENTINEL_MASTER": "m", "REDIS_DB": "x"},
            "REDIS_DB must be a number",
        ),
        ({"REDIS_URL": "http://:pw@a:6379"}, "'http://:***@a:6379' is not a redis://"),
    ],
)
def test_contradicting_or_malformed_variables_are_refused_with_what_to_fix(environ, message):
    with pytest.raises(RedisTopologyError, match=re.escape(message)):
        hosts_from_environ(environ)


def test_descriptions_never_show_a_password():
    assert describe("redis://:s3cret@a:6379/0") == "redis://:***@a:6379/0"
    assert describe("redis://user:s3cret@a:6379/0") == "redis://user:***@a:6379/0"
    assert describe("redis://a:6379/0") == "redis://a:6379/0"
    host = {"sentinels": [("s1", 1), ("s2", 2)], "master_name": "m", "password": "s3cret"}
    assert describe(host) == "master 'm' via Sentinel s1:1,s2:2"


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_a_key_lives_on_the_shard_channels_redis_picks_for_that_name(shards):
    names = [f"asgi__group__hub.rover.r{i}" for i in range(300)] + ["asgi:rooms:presence:ops"]
    picked = [shard_for(name, shards) for name in names]
    assert picked == [_consistent_hash(name, shards) for name in names]
    layer = RedisPubSubLoopLayer(hosts=[f"redis://h{i}" for i in range(shards)])
    assert [layer._shards.index(layer._get_shard(n)) for n in names] == picked
    assert set(picked) == set(range(shards))  # every shard holds some names


def _settings_in_a_child(environ: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(environ, DJANGO_SETTINGS_MODULE="mission_control.settings.base")
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps([s.REDIS_HOSTS, s.CHANNEL_LAYERS['default']]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    hosts, layer = json.loads(done.stdout.strip().splitlines()[-1])
    return {"hosts": hosts, "layer": layer}


def test_the_settings_give_the_channel_layer_every_shard_or_sentinel_master():
    shards = _settings_in_a_child({"REDIS_URL": "redis://a:1/0,redis://b:2/0"})
    assert shards["hosts"] == ["redis://a:1/0", "redis://b:2/0"]
    assert shards["layer"]["BACKEND"] == "streams.layers.RedisChannelLayer"
    assert shards["layer"]["CONFIG"]["hosts"] == shards["hosts"]
    sentinel = _settings_in_a_child({"REDIS_SENTINELS": "s:1", "REDIS_SENTINEL_MASTER": "m"})
    assert [h["master_name"] for h in sentinel["layer"]["CONFIG"]["hosts"]] == ["m"]
    embedded = _settings_in_a_child({})
    assert embedded["hosts"] == []
    assert embedded["layer"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
