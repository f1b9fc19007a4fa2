"""tbptt_service.cli.csv_feed and the feed/forecast commands, against a real server process: an interrupted
feed resumed sends every row exactly once, and ends where an uninterrupted feed ends."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tbptt_online.client import Client, SeriesStats, TransportFailure
from tbptt_service.cli import csv_feed
from tbptt_service.cli import main as cli
from tbptt_service.cli.cli_tools import add_feed_command, add_forecast_command
from tbptt_service.cli.csv_feed import FeedError, FeedInterrupted, FeedReport, feed, format_report
from tbptt_service.cli.csv_source import CsvSource

from ..conftest import SMALL_MODEL, ServerProcess
from ..live_server import running_server

SERIES = ("web-1", "web-2", "db-1")
ROWS_PER_SERIES = 30
START = datetime(2024, 3, 4, tzinfo=UTC)


def write_csv(path: Path, with_time: bool = True, by_series: bool = False) -> Path:
    """Hourly rows of three hosts interleaved by time (or each host's rows after the last's: ``by_series``);
    one missing cell."""
    cells = [(t, j) for j in range(len(SERIES)) for t in range(ROWS_PER_SERIES)]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["timestamp", "host", "cpu"] if with_time else ["host", "cpu"])
        for t, j in cells if by_series else sorted(cells):
            value = "" if (t, j) == (7, 1) else f"{20 + 5 * j + (t % 6) * 1.5 + 0.1 * t:.2f}"
            stamp = (START + timedelta(hours=t)).isoformat().replace("+00:00", "Z")
            writer.writerow([stamp, SERIES[j], value] if with_time else [SERIES[j], value])
    return path


def source_of(path: Path, with_time: bool = True) -> CsvSource:
    return CsvSource.from_path(
        path, value_columns=["cpu"], series_column="host", time_column="timestamp" if with_time else None
    )


class RecordingTransport(httpx.BaseTransport):
    """Passes every request on; keeps each one's ``(method, path)`` in ``requests`` and each observation POST's
    ``(series, timestamp)`` pairs in ``sent``, in order."""

    def __init__(self) -> None:
        self.inner, self.sent, self.requests = httpx.HTTPTransport(), [], []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if request.method == "POST" and request.url.path.endswith("/observations"):
            body = json.loads(request.read())
            self.sent.append([(o["series"], o.get("timestamp")) for o in body["observations"]])
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class InterruptingTransport(httpx.BaseTransport):
    """Passes ``posts_before`` observation POSTs; the next one reaches the server, is applied, and its
    answer is lost (the connection breaks): the worst moment to be interrupted."""

    def __init__(self, posts_before: int) -> None:
        self.inner, self.posts_before, self.posts = httpx.HTTPTransport(), posts_before, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST":
            self.posts += 1
            if self.posts > self.posts_before:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class CtrlCTransport(httpx.BaseTransport):
    """Sends SIGINT to this process (a Ctrl-C) as the ``posts_before + 1``-th observation POST leaves,
    before the server has answered it; the request goes on."""

    def __init__(self, posts_before: int) -> None:
        self.inner, self.posts_before, self.posts = httpx.HTTPTransport(), posts_before, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts += 1
            if self.posts == self.posts_before + 1:
                os.kill(os.getpid(), signal.SIGINT)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("feed-server")) as server:
        yield server


@pytest.fixture
def model(server: ServerProcess, request: pytest.FixtureRequest) -> str:
    """A fresh model (SMALL_MODEL) for each test, named after it."""
    name = "m-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    with Client(server.url) as client:
        client.create_model(name, **SMALL_MODEL)
    return name


@pytest.mark.parametrize("by_series", [False, True], ids=["time-ordered", "series-ordered"])
@pytest.mark.parametrize("with_time", [True, False], ids=["by-timestamp", "by-count"])
def test_an_interrupted_feed_resumed_feeds_every_row_exactly_once(
    server: ServerProcess, model: str, tmp_path: Path, with_time: bool, by_series: bool
) -> None:
    source = source_of(write_csv(tmp_path / "metrics.csv", with_time, by_series), with_time)
    total = len(SERIES) * ROWS_PER_SERIES
    interrupting = InterruptingTransport(posts_before=3)
    with Client(server.url, transport=interrupting, retries=0) as client, pytest.raises(TransportFailure):
        feed(client, source, model, batch_size=7, progress=False)
    with Client(server.url) as client:
        resumed = feed(client, source, model, batch_size=7, progress=False)
        client.create_model(f"{model}-ref", **SMALL_MODEL)
        reference = feed(client, source, f"{model}-ref", batch_size=7, progress=False)
        info = client.get_model(model)
    assert (resumed.skipped, resumed.sent, resumed.rows) == (4 * 7, total - 4 * 7, total)  # 4th batch: answer lost
    assert info.observations == total and info.series_count == len(SERIES)
    assert [s.count for s in resumed.stats] == [ROWS_PER_SERIES] * len(SERIES)
    assert (reference.skipped, reference.sent) == (0, total)
    assert resumed.stats == reference.stats  # same batches in the same order: the same model, bit for bit


def stopped_by_ctrl_c(client: Client, source: CsvSource, model: str) -> FeedReport:
    """The report of a feed (batches of 7) that a Ctrl-C stopped; a test failure, not pytest's own
    interruption, where the Ctrl-C escaped instead."""
    try:
        with pytest.raises(FeedInterrupted) as stopped:
            feed(client, source, model, batch_size=7, progress=False)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the feed instead of stopping it before the next batch")
    return stopped.value.report


@pytest.mark.parametrize("with_time", [True, False], ids=["by-timestamp", "by-count"])
def test_ctrl_c_during_a_batch_waits_for_its_answer_so_a_rerun_sends_every_row_exactly_once(
    server: ServerProcess, model: str, tmp_path: Path, with_time: bool
) -> None:
    # a hostile test (session 35): Ctrl-C raised at once, the server went on applying the batch in flight,
    # and a rerun that read the counts meanwhile sent its last rows twice (3,084 values for 3,000 rows)
    source = source_of(write_csv(tmp_path / "metrics.csv", with_time), with_time)
    total = len(SERIES) * ROWS_PER_SERIES
    with Client(server.url, transport=CtrlCTransport(posts_before=2), retries=0) as client:
        assert stopped_by_ctrl_c(client, source, model).sent == 3 * 7  # the third batch answered; nothing after it
        assert client.get_model(model).observations == 3 * 7  # all of them applied, when the feed stopped
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    with Client(server.url) as client:
        resumed = feed(client, source, model, batch_size=7, progress=False)
        assert client.get_model(model).observations == total
    assert (resumed.skipped, resumed.sent) == (3 * 7, total - 3 * 7)
    assert [s.count for s in resumed.stats] == [ROWS_PER_SERIES] * len(SERIES)


def test_ctrl_c_with_no_batch_in_flight_stops_before_the_next_one(
    server: ServerProcess, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a review (session 35): a Ctrl-C while rows were read for the next batch sent that batch too, and one
    # while rows the server held were skipped was ignored (the feed ran to its end and exited 0)
    real_pending = csv_feed.pending  # (a file in time order: streamed as pending reads it)

    def pending_with_ctrl_c(*args: Any) -> Iterator[Any]:
        for i, row in enumerate(real_pending(*args)):
            if i == 10:  # the first batch of 7 answered, the second being read
                os.kill(os.getpid(), signal.SIGINT)
            yield row

    monkeypatch.setattr(csv_feed, "pending", pending_with_ctrl_c)
    source = source_of(write_csv(tmp_path / "metrics.csv"))
    with Client(server.url) as client:
        assert stopped_by_ctrl_c(client, source, model).sent == 7 and client.get_model(model).observations == 7


def test_a_finished_feed_run_again_sends_nothing(server: ServerProcess, model: str, tmp_path: Path) -> None:
    source = source_of(write_csv(tmp_path / "metrics.csv"))
    with Client(server.url) as client:
        first = feed(client, source, model, batch_size=50, progress=False)
        again = feed(client, source, model, batch_size=50, progress=False)
    assert (again.sent, again.skipped) == (0, first.sent)
    assert again.stats == first.stats


@pytest.mark.parametrize("with_time", [True, False], ids=["by-timestamp", "by-count"])
def test_a_file_sorted_by_series_is_sent_merged_in_time_order_and_learns_as_the_time_ordered_file(
    server: ServerProcess, model: str, tmp_path: Path, with_time: bool
) -> None:
    # a new user's (session 56): 100 meters' rows sorted by meter went in 15 times slower than sorted by
    # time, each row of one series in a request being a tick of its own
    grouped = source_of(write_csv(tmp_path / "grouped.csv", with_time, by_series=True), with_time)
    interleaved = source_of(write_csv(tmp_path / "interleaved.csv", with_time), with_time)
    recording = RecordingTransport()
    with Client(server.url, transport=recording) as client:
        report = feed(client, grouped, model, batch_size=12, progress=False)
    expected = [(SERIES[j], t) for t in range(ROWS_PER_SERIES) for j in range(len(SERIES))]
    sent = [pair for batch in recording.sent for pair in batch]
    hour = {(START + timedelta(hours=t)).isoformat().replace("+00:00", "Z"): t for t in range(ROWS_PER_SERIES)}
    if with_time:
        assert [(name, hour[stamp]) for name, stamp in sent] == expected
    else:
        assert [name for name, _ in sent] == [name for name, _ in expected]
    assert [len(batch) for batch in recording.sent] == [12] * 7 + [6]
    with Client(server.url) as client:
        client.create_model(f"{model}-ref", **SMALL_MODEL)
        reference = feed(client, interleaved, f"{model}-ref", batch_size=12, progress=False)
    assert report.stats == reference.stats  # the same requests: the same model, bit for bit


def test_a_feed_reads_the_series_statistics_a_page_at_a_time(
    server: ServerProcess, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a hostile test (session 57): a 5,000-series file read each series' statistics with a GET of its own, before
    # sending and for the report, 26.8 s each time where pages took 8.9 s
    monkeypatch.setattr(csv_feed, "PAGE", 2)  # pages of 2: the 3 series take 2 pages
    monkeypatch.setattr(csv_feed, "PAGE_IN_GETS", 1)  # (a page as costly as a GET: pages of 2 for 3 series)
    source = source_of(write_csv(tmp_path / "metrics.csv"))
    with Client(server.url) as client:
        client.observe(model, "other-0", 1.0)  # a series of the model's that is not in the file
        counting = RecordingTransport()
        with Client(server.url, transport=counting) as counted:
            report = feed(counted, source, model, batch_size=50, progress=False)
        assert report.stats == [client.series_stats(model, name) for name in SERIES]
        counting.requests.clear()
        with Client(server.url, transport=counting) as counted:
            again = feed(counted, source, model, batch_size=50, progress=False)
    assert (again.sent, again.skipped) == (0, len(SERIES) * ROWS_PER_SERIES)
    gets = [path for method, path in counting.requests if method == "GET"]
    assert sum(path.endswith("/series-stats") for path in gets) == 2 * 2  # the 4 series in 2 pages, twice
    assert not [path for path in gets if "/series/" in path]  # no series read on its own


def test_a_feed_of_a_few_of_a_large_models_series_reads_theirs_alone(
    server: ServerProcess, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_feed, "PAGE", 1)  # 3 series in a model of 4, then 7: fewer than a page's worth a series
    monkeypatch.setattr(csv_feed, "PAGE_IN_GETS", 1)
    source = source_of(write_csv(tmp_path / "metrics.csv"))
    counting = RecordingTransport()
    with Client(server.url) as client:
        client.observe_many(model, [(f"other-{i}", 1.0) for i in range(4)])
        with Client(server.url, transport=counting) as counted:
            report = feed(counted, source, model, batch_size=50, progress=False)
        assert report.stats == [client.series_stats(model, name) for name in SERIES]
    gets = [path for method, path in counting.requests if method == "GET"]
    assert not [path for path in gets if path.endswith("/series-stats")]
    assert len([path for path in gets if "/series/" in path]) == 2 * len(SERIES)  # 404s before, then the report


def test_a_file_in_time_order_is_streamed_not_held(
    server: ServerProcess, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a review (session 57): every file was read whole into memory to merge it, one in time order already too
    def no_merge(*args: Any) -> Iterator[Any]:
        raise AssertionError("a file in time order was merged")

    monkeypatch.setattr(csv_feed, "in_time_order", no_merge)
    for with_time in (True, False):
        source = source_of(write_csv(tmp_path / f"metrics-{with_time}.csv", with_time), with_time)
        assert csv_feed.survey(source) == ({name: ROWS_PER_SERIES for name in SERIES}, True)
        grouped = source_of(write_csv(tmp_path / f"grouped-{with_time}.csv", with_time, by_series=True), with_time)
        assert csv_feed.survey(grouped)[1] is False
    with Client(server.url) as client:
        report = feed(client, source_of(write_csv(tmp_path / "metrics.csv")), model, batch_size=50, progress=False)
    assert report.sent == len(SERIES) * ROWS_PER_SERIES


def test_ctrl_c_while_the_merge_reads_the_file_stops_before_anything_is_sent(
    server: ServerProcess, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rows = CsvSource.rows

    def rows_with_ctrl_c(self: CsvSource) -> Iterator[Any]:
        for i, row in enumerate(real_rows(self)):
            if i == 20 and self.name.endswith("grouped.csv") and rows_with_ctrl_c.reads == 1:
                os.kill(os.getpid(), signal.SIGINT)  # the merge's read (the survey's was the first)
            yield row
        rows_with_ctrl_c.reads += 1

    rows_with_ctrl_c.reads = 0  # type: ignore[attr-defined]
    monkeypatch.setattr(CsvSource, "rows", rows_with_ctrl_c)
    source = source_of(write_csv(tmp_path / "grouped.csv", by_series=True))
    with Client(server.url) as client:
        assert stopped_by_ctrl_c(client, source, model).sent == 0
        assert client.list_series(model).total == 0
    assert rows_with_ctrl_c.reads == 1  # type: ignore[attr-defined]  # (the merge's read stopped, not read to the end)


def test_in_file_order_sends_the_rows_as_the_file_holds_them(server: ServerProcess, model: str, tmp_path: Path) -> None:
    source = source_of(write_csv(tmp_path / "grouped.csv", by_series=True))
    recording = RecordingTransport()
    with Client(server.url, transport=recording) as client:
        feed(client, source, model, batch_size=12, progress=False, file_order=True)
    sent = [name for batch in recording.sent for name, _ in batch]
    assert sent == [name for name in SERIES for _ in range(ROWS_PER_SERIES)]


def test_a_row_back_in_time_is_sent_after_its_series_earlier_rows_not_sorted_before_them(
    server: ServerProcess, model: str, tmp_path: Path
) -> None:
    # the merge keeps each series' file order: a sort by time would send line 4 before line 3, and the
    # server would take a file it refuses in its own order
    path = tmp_path / "back.csv"
    path.write_text("timestamp,host,cpu\n100,a,1.0\n300,a,2.0\n200,a,3.0\n250,b,4.0\n")
    with Client(server.url) as client:
        with pytest.raises(FeedError, match=r"back\.csv, line 4: .*409.*older"):
            feed(client, source_of(path), model, batch_size=10, progress=False)
        assert client.list_series(model).total == 0
    assert [row.line for row in csv_feed.in_time_order(csv_feed.pending(source_of(path), {}, lambda: None))] == [
        2,
        5,
        3,
        4,
    ]


def test_a_row_the_server_refuses_is_reported_with_its_line(server: ServerProcess, model: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "timestamp,host,cpu\n100,a,1.0\n160,a,2.0\n220,b,3.0\n160,b,9.0\n"  # line 5: b goes back in time
    )
    with Client(server.url) as client:
        with pytest.raises(FeedError, match=r"bad\.csv, line 5: .*409.*older") as error:
            feed(client, source_of(path), model, batch_size=2, progress=False)
        assert client.list_series(model).series == ["a"]  # the refused batch (lines 4-5) was not applied
        assert client.series_stats(model, "a").count == 2
    assert "nothing of it was applied" in str(error.value)


def test_every_row_a_409_lists_is_reported_with_its_line(server: ServerProcess, model: str, tmp_path: Path) -> None:
    # a 409 names every element the timestamp rule refuses (session 56): the feed names each one's line
    path = tmp_path / "stale.csv"
    path.write_text("timestamp,host,cpu\n100,a,1.0\n100,b,1.0\n100,c,1.0\n50,a,2.0\n160,b,2.0\n60,c,2.0\n")
    with Client(server.url) as client:
        with pytest.raises(FeedError) as error:
            # (in file order: merged by time, each stale row would go right after its series' row before it)
            feed(client, source_of(path), model, batch_size=3, progress=False, file_order=True)
        assert client.series_stats(model, "b").count == 1  # the refused batch (lines 5-7) was not applied
    assert "stale.csv, line 5: " in str(error.value) and "(also line 7; 2 refused in all)" in str(error.value)
    # past the 5 a 409 lists with their messages: every refused row by its index (refused, session 57)
    path.write_text(
        "timestamp,host,cpu\n"
        + "".join(f"100,s{i},1.0\n" for i in range(8))
        + "".join(f"50,s{i},2.0\n" for i in range(8))
    )
    with Client(server.url) as client, pytest.raises(FeedError) as many:
        feed(client, source_of(path), f"{model}", batch_size=8, progress=False, file_order=True)
    assert "stale.csv, line 10: " in str(many.value)
    assert "(also lines 11, 12, 13, 14, 15, 16, 17; 8 refused in all)" in str(many.value)


def test_a_malformed_cell_stops_the_feed_before_anything_is_sent(
    server: ServerProcess, model: str, tmp_path: Path
) -> None:
    path = tmp_path / "typo.csv"
    path.write_text("timestamp,host,cpu\n100,a,1.0\n160,a,2.0\n220,a,abc\n")
    with Client(server.url) as client:
        with pytest.raises(ValueError, match=r"typo\.csv, line 4, column 'cpu': 'abc' is invalid"):
            feed(client, source_of(path), model, progress=False)
        assert client.list_series(model).total == 0  # the whole file is checked first
    path.write_text("timestamp,host,cpu\n100,a,1.0\n160,a,-1e37\n")  # (sent, it failed its batch: session 57)
    with pytest.raises(ValueError, match=r"line 3, column 'cpu': '-1e37' is invalid: must lie within the service's"):
        list(source_of(path).rows())
    path.write_text("timestamp,host,cpu\n100,a\n")
    with pytest.raises(ValueError, match=r"line 2, column 'cpu': None is invalid: the row has fewer cells"):
        list(source_of(path).rows())
    path.write_text("time,host,cpu\n100,a,1.0\n")
    with pytest.raises(ValueError, match=r"column\(s\) \['timestamp'\] not found; the header has"):
        list(source_of(path).rows())


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tbptt-online")
    commands = parser.add_subparsers(dest="command", required=True)
    add_feed_command(commands)
    add_forecast_command(commands)
    return parser.parse_args(argv)


def test_feed_and_forecast_commands_print_the_error_table_and_the_forecast(
    server: ServerProcess, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "metrics.csv")
    common = ["--url", server.url]
    feed_args = [str(path), "--series-column", "host", "--time-column", "timestamp", "--value-column", "cpu"]
    args = parse(["feed", *feed_args, "--model", model, "--batch-size", "40", "--no-progress", *common])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert (
        f"{len(SERIES) * ROWS_PER_SERIES} rows in the file, {len(SERIES) * ROWS_PER_SERIES} sent, 0 already" in printed
    )
    header, *rows = printed.splitlines()[2:]
    assert header.split()[:5] == ["series", "count", "MAE", "naive", "MAE"]
    assert [row.split()[:2] for row in rows[:3]] == [[name, str(ROWS_PER_SERIES)] for name in SERIES]
    assert rows[3].startswith("all (geometric mean)")

    args = parse(["forecast", model, "db-1", "--horizon", "5", "--level", "0.8", *common])
    assert args.handler(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "series 'db-1': 5 steps after step 30" in lines[0] and "80% interval" in lines[0]
    assert lines[1].split() == ["step", "due", "(UTC)", "mean", "lower", "upper"]  # hourly rows: the cadence known
    steps = [line.split() for line in lines[2:]]
    assert [s[0] for s in steps] == ["+1", "+2", "+3", "+4", "+5"]
    last = START + timedelta(hours=ROWS_PER_SERIES - 1)
    assert [s[1] for s in steps] == [
        (last + timedelta(hours=k)).isoformat().replace("+00:00", "Z") for k in range(1, 6)
    ]
    assert all(float(lo) <= float(m) <= float(hi) for _, _, m, lo, hi in steps)

    args = parse(["forecast", model, "no-such-host", *common])
    assert args.handler(args) == 1
    assert "404: series 'no-such-host' is unknown" in capsys.readouterr().err


def test_the_console_script_offers_feed_and_forecast(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    for command in ("feed", "forecast"):
        with pytest.raises(SystemExit) as done:
            parser.parse_args([command, "--help"])
        assert done.value.code == 0
        assert f"usage: tbptt-online {command}" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["feed", "forecast", "models"])
@pytest.mark.parametrize("given", ["--url", "TBPTT_URL"])
def test_a_malformed_url_is_a_usage_error_naming_it_not_a_traceback(
    tmp_path, monkeypatch, capsys, command, given
) -> None:
    """A hostile test (session 51): ``--url 'http://[::1'`` (or ``TBPTT_URL``) ended ``feed`` in httpx's
    ``InvalidURL`` and its traceback; it is an argument's error, exit 2, as another bad argument is."""
    path = write_csv(tmp_path / "metrics.csv")
    argv = {
        "feed": ["feed", str(path), "--series-column", "host", "--value-column", "cpu", "--no-progress"],
        "forecast": ["forecast", "default", "web-1"],
        "models": ["models", "list"],
    }[command]
    if given == "TBPTT_URL":
        monkeypatch.setenv("TBPTT_URL", "http://[::1")
        args = cli.build_parser().parse_args([*argv, "--url", "http://127.0.0.1:9"])
        assert args.url == "http://127.0.0.1:9"  # --url given: the variable is not read
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--url", "http://[::1"] if given == "--url" else argv)
    assert done.value.code == 2
    told = "(the value of TBPTT_URL, --url's default)" if given == "TBPTT_URL" else ""
    name = "models list" if command == "models" else command
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"tbptt-online {name}: error: argument --url: 'http://[::1' is invalid: Invalid port: ':1' {told}".rstrip()
    )


def test_the_report_lists_each_series_errors_coverage_and_outliers() -> None:
    common = dict(count=504, last_timestamp=None, interval_level=0.9)
    stats = [
        SeriesStats("web-1", mae=2.0, rmse=2.5, naive_mae=2.5, naive_rmse=3.0, coverage=0.89, outliers=3, **common),
        SeriesStats("db-1", mae=1.0, rmse=1.5, naive_mae=2.0, naive_rmse=2.0, coverage=None, **common),  # no hybrid
    ]
    report = FeedReport(series=["web-1", "db-1"], stats=stats)
    lines = format_report(report, "m").splitlines()[-4:]
    assert lines[0].split() == [
        "series", "count", "MAE", "naive", "MAE", "MAE/naive", "RMSE", "naive", "RMSE", "coverage", "outliers",
    ]  # fmt: skip
    assert lines[1].split() == ["web-1", "504", "2", "2.5", "0.8", "2.5", "3", "89.0%", "(target", "90%)", "3"]
    assert lines[2].split() == ["db-1", "504", "1", "2", "0.5", "1.5", "2", "-", "-"]
    # the ratios' geometric mean, sqrt(0.8 * 0.5) (it was the count-weighted MAEs' ratio, 1.5 / 2.25: in the units
    # of the largest series, a new user's 1e6 beside 1e-3, session 54)
    assert lines[3].split() == ["all", "(geometric", "mean)", "1008", "-", "-", "0.6325"]
    # a series forecast exactly (MAE 0) is left out of the mean and named (it made the mean 0, a review)
    exact = SeriesStats("flat", mae=0.0, rmse=0.0, naive_mae=1.0, naive_rmse=1.0, coverage=None, **common)
    last = format_report(FeedReport(series=["web-1", "db-1", "flat"], stats=[*stats, exact]), "m").splitlines()[-1]
    assert last.split() == ["all", "(geometric", "mean;", "1", "exact)", "1512", "-", "-", "0.6325"]
    # a stuck reading's repeats held back (flat_runs.py): a held column, where any series has some
    stuck = SeriesStats("stuck", mae=1.0, rmse=1.0, naive_mae=2.0, naive_rmse=2.0, coverage=0.9, outliers=0, held=34,
                        **common)  # fmt: skip
    table = format_report(FeedReport(series=["web-1", "stuck"], stats=[stats[0], stuck]), "m").splitlines()[-4:]
    assert table[0].split()[-2:] == ["outliers", "held"]
    assert table[1].split()[-2:] == ["3", "0"] and table[2].split()[-2:] == ["0", "34"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # each of these was read without a word (a hostile test): 1_0 as 10, Arabic digits as 12, the
        # last of two "cpu" columns, a row's extra cell ignored, a timestamp 1_00 as 100
        ("timestamp,host,cpu\n100,a,1_0\n", r"line 2, column 'cpu': '1_0' is invalid: must be a number written in"),
        ("timestamp,host,cpu\n100,a,\u0661\u0662\n", r"column 'cpu': '\u0661\u0662' is invalid: must be a number"),
        ("timestamp,host,cpu,cpu\n100,a,1.0,2.0\n", r"the header names column\(s\) \['cpu'\] more than once"),
        (
            "timestamp,host,cpu\n100,a,1.0,2.0\n",
            r"line 2: the row has more cells than the header \(\['2.0'\] left over\)",
        ),
        ("timestamp,host,cpu\n1_00,a,1.0\n", r"line 2, column 'timestamp': '1_00' is invalid: must be unix seconds"),
    ],
    ids=["underscore", "other-digits", "repeated-column", "extra-cell", "timestamp-underscore"],
)
def test_a_cell_or_header_python_would_guess_at_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "odd.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        list(source_of(path).rows())
    # what cannot change what is read is fine: a column not read named twice, empty cells past the header
    path.write_text("timestamp,host,cpu,note,note,\n1.5e2,a,-1.25E+1,x,y,\n160,a,.5,,,,\n220,a,,,\n", encoding="utf-8")
    assert [(row.seconds, row.value) for row in source_of(path).rows()] == [(150.0, -12.5), (160.0, 0.5), (220.0, None)]
