"""backup --redis / restore --redis against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import redis

from deltavault.errors import FormatError
from deltavault.sources.redis import KeyRecord, encode_record, read_records
from tests.sources.helpers import cli, make_repo
from tests.support.servers import RedisServer


def fill(r: redis.Redis) -> None:
    r.set("str", "value")
    r.set(b"bin\x00key\xff", bytes(range(256)))
    r.set("counter", 42)
    r.set("ttl", "soon", px=600_000)
    r.rpush("list", *[f"o{i}" for i in range(100)])
    r.hset("hash:pos:A1", mapping={"qty": "1.5", "px": "101.25"})
    r.sadd("set", *range(50))
    r.zadd("zset", {f"m{i}": i / 3 for i in range(200)})
    r.xadd("stream", {"trade": "T1", "qty": "3"})
    r.hset("big", mapping={f"f{i}": "x" * 50 for i in range(2000)})


def state(r: redis.Redis) -> dict[bytes, tuple[bytes, object]]:
    """Each key's type and logical value (DUMP bytes of a large hash may differ in order)."""
    read = {b"string": r.get, b"list": lambda k: r.lrange(k, 0, -1), b"hash": r.hgetall,
            b"set": r.smembers, b"zset": lambda k: r.zrange(k, 0, -1, withscores=True),
            b"stream": lambda k: r.xrange(k)}
    return {k: (r.type(k), read[r.type(k)](k)) for k in r.scan_iter()}


def test_round_trip(redis_server: RedisServer, tmp_path: Path) -> None:
    src = redis.Redis.from_url(redis_server.url(1))
    src.flushdb()
    fill(src)
    repo = tmp_path / "repo"
    make_repo(repo)
    res = cli(repo, "backup", "--redis", redis_server.url(1), "--type", "full", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["source"] == f"redis:127.0.0.1:{redis_server.port}/1"
    expected = state(src)
    src.set("str", "changed")
    second = json.loads(cli(repo, "backup", "--redis", redis_server.url(1), "--json").stdout)
    assert second["type"] == "incr" and second["bytes_added"] < 20_000

    dst = redis.Redis.from_url(redis_server.url(2))
    dst.flushdb()
    out = cli(repo, "restore", doc["snapshot_id"], "--redis", redis_server.url(2), "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["keys"] == len(expected)
    assert state(dst) == expected
    assert 0 < dst.pttl("ttl") <= 600_000 and dst.pttl("str") == -1
    assert dst.zscore("zset", "m3") == pytest.approx(1.0)
    busy = cli(repo, "restore", "latest", "--redis", redis_server.url(2))
    assert busy.exit_code == 1 and "not empty" in busy.stderr
    assert cli(repo, "restore", "latest", "--redis", redis_server.url(2), "--force"
               ).exit_code == 0
    assert dst.get("str") == b"changed"


def test_dump_format_round_trip_and_truncation() -> None:
    recs = [KeyRecord(b"k\x00", "string", -1, b"\x00payload"), KeyRecord(b"", "hash", 5, b"")]
    data = b"DVREDIS1\n" + b"".join(encode_record(r) for r in recs)
    assert list(read_records(io.BytesIO(data))) == recs
    with pytest.raises(FormatError):
        list(read_records(io.BytesIO(data[:-3] if recs[-1].payload else data[:-1])))
    with pytest.raises(FormatError):
        list(read_records(io.BytesIO(b"NOTREDIS\n")))
