"""PROMPTS_REDIS_URL: every scheme the issue names, Sentinel host lists, credentials kept out of logs."""

from __future__ import annotations

import pytest

from promptwatch.sync import RedisUrlError, parse_url, redact


def test_sentinel_url_is_split() -> None:
    t = parse_url("redis+sentinel://bot:s%3Acret@10.0.0.5:26379,[::1]:26380/mymaster/2")
    assert t.is_sentinel and t.sentinels == (("10.0.0.5", 26379), ("::1", 26380))
    assert (t.service, t.db, t.username, t.password, t.tls) == ("mymaster", 2, "bot", "s:cret", False)
    assert parse_url("rediss+sentinel://h:1/svc").tls


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "rediss://user:pw@h:6380/1", "unix:///run/redis/redis.sock?db=1"]
)
def test_plain_urls_go_to_redis_py(url: str) -> None:
    t = parse_url(url)
    assert not t.is_sentinel and t.url == url and t.tls is url.startswith("rediss")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:1", "the scheme must be"),
        ("redis+sentinel://h:1", "the service name is missing"),
        ("redis+sentinel://h/svc", "is not host:port"),
        ("redis+sentinel://h:99999/svc", "is not host:port"),
        ("redis+sentinel://h:1/svc/x", "is not a database number"),
    ],
)
def test_bad_urls_are_named(url: str, problem: str) -> None:
    with pytest.raises(RedisUrlError, match=problem) as info:
        parse_url(url)
    assert "PROMPTS_REDIS_URL=" in str(info.value)


def test_passwords_never_reach_a_message() -> None:
    assert redact("redis://bot:secret@h:6379/0") == "redis://bot:***@h:6379/0"
    with pytest.raises(RedisUrlError) as info:
        parse_url("redis+sentinel://bot:secret@h/svc")
    assert "secret" not in str(info.value)
