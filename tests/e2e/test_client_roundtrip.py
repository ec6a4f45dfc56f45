"""`htq client write` and `htq client read` against a real gunicorn server (config/gunicorn.py) with
token auth: a 100,000-line file round-trips identically, the progress bar shows on a terminal only,
and every failure exits non-zero with a clear message."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from app.cli import main
from app.embedded import free_port
from app.processes import ROOT, ServiceProcesses, service_env

TOKEN = "s3cret-client-token"
LINES = 100_000


@pytest.fixture(scope="module")
def web(redis_server, tmp_path_factory):
    """One gunicorn server for the module; each test uses its own queue names."""
    procs = ServiceProcesses(service_env(redis_server.url, WEB_CONCURRENCY="2", HTQ_API_TOKENS=TOKEN,
                                         LOG_LEVEL="WARNING"), tmp_path_factory.mktemp("web"))
    try:
        yield procs.start_web(free_port())
    finally:
        procs.stop_all()


def htq_client(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HTQ_TOKEN": TOKEN}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "client", *args], cwd=ROOT, env=env, **popen)


def sample_lines(count: int) -> bytes:
    """Correlative lines, as the original's generate.sh made, with a few awkward ones mixed in."""
    odd = ["", "caf\u00e9 \u2713 \u00fc", "  leading and trailing  ", "tab\tinside", "{\"json\": [1, 2]}",
           "carriage return\r", "\"quoted\""]
    lines = [odd[n % len(odd)] if n % 97 == 0 else f"line {n:06d} of the file" for n in range(count)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_a_100000_line_file_round_trips_identically(web, tmp_path):
    source, copy = tmp_path / "myfile.txt", tmp_path / "mycopy.txt"
    source.write_bytes(sample_lines(LINES))
    started = time.monotonic()
    # As in the original's README: the reader first, then the writer.
    reader = htq_client("read", web, "roundtrip", str(copy), "--idle", "3", stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
    writer = htq_client("write", web, "roundtrip", str(source), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    write_out, write_err = writer.communicate(timeout=60)
    read_out, read_err = reader.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert writer.returncode == 0, write_err.decode()
    assert reader.returncode == 0, read_err.decode()
    assert copy.read_bytes() == source.read_bytes()
    assert write_err.decode().strip() == f"pushed {LINES} lines from {source} to roundtrip"
    assert read_err.decode().strip() == f"read {LINES} lines from roundtrip into {copy}"
    assert write_out == read_out == b""
    queue = requests.get(web + "/v1/queues/roundtrip", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert {key: queue.json()[key] for key in ("visible", "in_flight", "delayed")} == {
        "visible": 0, "in_flight": 0, "delayed": 0}  # every line acknowledged
    assert elapsed < 60


def test_read_waits_for_the_idle_time_then_stops_with_nothing_to_read(web, tmp_path):
    started = time.monotonic()
    result = CliRunner().invoke(main, ["client", "read", web, "nobody-pushed", str(tmp_path / "out.txt"),
                                       "--idle", "0.5", "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert 0.5 <= time.monotonic() - started < 5
    assert (tmp_path / "out.txt").read_bytes() == b""


def test_a_line_left_unacknowledged_by_a_killed_reader_is_read_again(web, tmp_path):
    """What a read has not written and acknowledged stays in the queue (its lock expires)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    requests.put(web + "/v1/queues/resume", json={"visibility_timeout": 1}, headers=headers, timeout=5)
    source = tmp_path / "in.txt"
    source.write_bytes(b"a\nb\nc\n")
    assert CliRunner().invoke(main, ["client", "write", web, "resume", str(source), "--token", TOKEN]).exit_code == 0
    # Someone received everything and died before writing: locks held for 1 s.
    taken = requests.post(web + "/v1/queues/resume/messages/receive", json={"visibility_timeout": 1},
                          headers=headers, timeout=5).json()["messages"]
    assert len(taken) == 3
    (tmp_path / "out.txt").write_bytes(b"from an earlier read\n")
    result = CliRunner().invoke(main, ["client", "read", web, "resume", str(tmp_path / "out.txt"), "--idle", "2",
                                       "--append", "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.txt").read_bytes() == b"from an earlier read\na\nb\nc\n"


def test_no_progress_bar_when_output_is_not_a_terminal_and_one_on_a_terminal(web, tmp_path):
    source = tmp_path / "bar.txt"
    source.write_bytes(sample_lines(300))
    piped = htq_client("write", web, "bars", str(source), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = piped.communicate(timeout=30)
    assert piped.returncode == 0 and out == b""
    assert err.decode() == f"pushed 300 lines from {source} to bars\n"
    leader, follower = pty.openpty()
    on_terminal = htq_client("read", web, "bars", str(tmp_path / "copy.txt"), "--idle", "0.5",
                             stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    assert on_terminal.wait(30) == 0
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert b"read bars" in shown and b"300/300" in shown
    assert (tmp_path / "copy.txt").read_bytes() == source.read_bytes()


def test_a_missing_file_is_a_clear_usage_error(web, tmp_path):
    result = CliRunner().invoke(main, ["client", "write", web, "q", str(tmp_path / "missing.txt"), "--token", TOKEN])
    assert result.exit_code == 2
    assert "missing.txt" in result.output and "does not exist" in result.output


def test_a_refused_connection_exits_non_zero_with_a_message(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("x\n")
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["write", url, "q", str(source)], ["read", url, "q", str(tmp_path / "out.txt")]):
        result = CliRunner().invoke(main, ["client", *args])
        assert result.exit_code == 1
        assert f"Error: cannot reach {url}" in result.output


def test_http_errors_exit_non_zero_with_the_servers_message(web, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("x\n")
    no_token = CliRunner(env={"HTQ_TOKEN": None}).invoke(main, ["client", "write", web, "q", str(source)])
    assert no_token.exit_code == 1
    assert "HTTP 401: Missing or wrong bearer token (give a token with --token or HTQ_TOKEN)" in no_token.output
    assert "0 lines were pushed before this" in no_token.output
    bad_name = CliRunner().invoke(main, ["client", "write", web, "bad.name", str(source), "--token", TOKEN])
    assert bad_name.exit_code == 1 and "HTTP 422: Bad queue name" in bad_name.output
    wrong_url = CliRunner().invoke(main, ["client", "read", web + "/nowhere", "q", str(tmp_path / "out.txt"),
                                          "--token", TOKEN])
    assert wrong_url.exit_code == 1 and "HTTP 404" in wrong_url.output


def test_a_file_that_is_not_utf8_text_is_refused_naming_the_line(web, tmp_path):
    source = tmp_path / "latin1.txt"
    source.write_bytes(b"fine\ncaf\xe9\n")
    result = CliRunner().invoke(main, ["client", "write", web, "latin", str(source), "--token", TOKEN])
    assert result.exit_code == 1 and "line 2 is not UTF-8 text" in result.output
