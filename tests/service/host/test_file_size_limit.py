"""A file size limit on a real server process (RLIMIT_FSIZE, ``ulimit -f``: a write past it fails with EFBIG, which
SQLite reports as "disk I/O error"): a full log, answered 507 naming the limit, nothing applied, ``/readyz`` saying
so, writes taken again once the write-ahead file is checkpointed and the log pruned, nothing acknowledged lost.

An operator's test (session 58, F9) had 500 to every write for good, the WAL stuck at the limit, and ``/readyz`` ready.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import httpx
import pytest

from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.timeout(300)
LIMIT = 1024 * 1024  # bytes a file of the server's may hold: the WAL meets it far below SQLite's own checkpoint (4 MB)
SERIES = [f"s{i:02d}" for i in range(4)]
T0 = 1_700_000_000
# The server under the limit (Python ignores SIGXFSZ, so a write past it fails with EFBIG), as `tbptt-online serve`.
LIMITED_SERVE = (
    "import resource, runpy, sys; limit = int(sys.argv.pop(1)); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
    "runpy.run_module('tbptt_service.cli', run_name='__main__', alter_sys=True)"
)


def test_a_file_size_limit_answers_507_and_writes_resume_with_nothing_acknowledged_lost(start_server, tmp_path) -> None:
    env = {
        "TBPTT_DEFAULT_MODEL": json.dumps(SMALL_MODEL),
        "TBPTT_CHECKPOINT_INTERVAL_S": "1",
        "TBPTT_LOG_LEVEL": "warning",
    }
    state = tmp_path / "state"
    server = start_server(command=[sys.executable, "-c", LIMITED_SERVE, str(LIMIT), "serve"], settings_env=env)
    acknowledged, refusals, after_refusal = 0, [], 0
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for step in range(20_000):  # until 20 batches were taken after a refusal (each waits for the next one)
            body = {"observations": [{"series": s, "value": float((step + i) % 24)} for i, s in enumerate(SERIES)]}
            for observation in body["observations"]:
                observation["timestamp"] = T0 + 3600 * acknowledged
            response = client.post("/v1/models/default/observations", json=body)
            if response.status_code == 200:
                acknowledged += 1
                after_refusal += bool(refusals)
                if after_refusal == 20:
                    break
                continue
            assert response.status_code == 507, response.text
            if not refusals:  # the log refused the last write: ready to read, and saying why writes fail
                ready = client.get("/readyz")
                assert ready.status_code == 200 and ready.json()["status"] == "ready"
                assert ready.json()["log_write_failure"]["status"] == 507
                assert "RLIMIT_FSIZE" in ready.json()["log_write_failure"]["detail"]
            refusals.append(response.json()["detail"])
            after_refusal = 0
            time.sleep(0.05)  # (the checkpointer prunes the log once a second)
        else:
            pytest.fail(f"writes did not resume: {len(refusals)} refusals, the last {refusals[-1:]}")
        assert client.get("/readyz").json() == {"status": "ready"}  # a write was taken since
        counts = {s: client.get(f"/v1/models/default/series/{s}").json()["count"] for s in SERIES}
    detail = refusals[0]
    assert detail.startswith(f"the journal cannot record this batch ([Errno 27] event log {state}/events.sqlite3 is")
    assert "file size limit of 1048576 bytes (RLIMIT_FSIZE, ulimit -f)" in detail
    assert detail.endswith("nothing was applied")
    assert counts == dict.fromkeys(SERIES, acknowledged)  # the refused batches applied nothing

    server.process.send_signal(signal.SIGKILL)  # a crash: recovery from the checkpoints and the log
    server.process.wait(timeout=30)
    restarted = start_server(settings_env=env, state_dir=state)  # without the limit
    with httpx.Client(base_url=restarted.url, timeout=60) as client:
        after = {s: client.get(f"/v1/models/default/series/{s}").json()["count"] for s in SERIES}
    assert after == counts  # nothing acknowledged was lost
