"""Settings: every knob of the service, read from ``TBPTT_*`` environment variables.

>>> s = Settings(host="127.0.0.1", port=9000, default_model={"hidden_size": 16})
>>> s.port, s.default_config().hidden_size
(9000, 16)
>>> try:
...     Settings(default_model={"k1": 0})
... except ValueError as error:
...     print(error.errors()[0]["msg"])
Value error, k1=0 is invalid: must be an integer in [1, 100000]
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tbptt_online import ConfigValueError, ForecasterConfig, allocator
from tbptt_online.client.api_key import checked_api_key
from tbptt_service.descriptors import default_max_connections
from tbptt_service.errors import config_problem


class Settings(BaseSettings):
    """The service's configuration (env prefix ``TBPTT_``; ``default_model`` is JSON)."""

    model_config = SettingsConfigDict(env_prefix="TBPTT_", extra="forbid", validate_default=True)

    # not empty: uvicorn took "" for every interface (a new user's TBPTT_HOST= from an env file, session 36)
    host: str = Field("127.0.0.1", pattern=r"^\S+$", description="Interface to listen on (0.0.0.0 inside a container).")
    port: int = Field(
        8000, ge=0, le=65535, description="TCP port to listen on (0: a free one the system picks, in uvicorn's log)."
    )
    state_dir: Path = Field(Path("./state"), description="Directory for the service's durable state.")
    allowed_hosts: str = Field(
        "",
        description="Comma-separated names (no port) a browser may reach the service by, besides the loopback ones and "
        "TBPTT_HOST ('*': any): a request a browser sends to another Host is refused (403; DNS rebinding).",
    )
    api_key: str | None = Field(
        None, min_length=1, description="When set, every route but /healthz and /readyz needs 'Bearer <key>'."
    )
    default_model: dict[str, Any] = Field(
        default_factory=dict,
        description="ForecasterConfig fields of the model named 'default', created when the state is new ({} = library "
        "defaults; a state that holds it keeps its config, a field named here that differs is logged as a warning).",
    )
    create_default_model: bool = Field(
        True,
        description="Create the model 'default' when the state is new (a cluster's shards: only the shard that owns "
        "the name does).",
    )
    max_batch_observations: int = Field(5000, ge=1, le=1_000_000, description="Observations per request at most.")
    max_queued_observations: int = Field(
        200_000,
        ge=1,
        le=100_000_000,
        description="Observations one model may hold waiting to be applied (its requests queued and in progress): "
        "a request past it gets 503 with Retry-After, nothing of it applied.",
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Request body size limit (413 beyond).")
    max_checkpoint_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Body size limit of a checkpoint import, POST /v1/models/{model}/checkpoint (413 beyond): a "
        "model's export is its whole state, about 69 KB a series with the defaults plus 0.25 MB (about 3,900 series).",
    )
    body_timeout_s: float = Field(
        30.0, gt=0.0, le=3600.0, description="A request body must arrive within this many seconds (408 beyond)."
    )
    header_timeout_s: float = Field(
        30.0,
        gt=0.0,
        le=3600.0,
        description="A request's head (request line and headers) must arrive within this many seconds of the "
        "connection's opening or of its previous response (408 and closed beyond; closed when nothing was sent).",
    )
    send_timeout_s: float = Field(
        30.0,
        gt=0.0,
        le=3600.0,
        description="While the server has more of an answer for a client than it took (64 KiB unsent), the client "
        "must take some within this many seconds (48 KiB of it): past it the connection is closed (a reset).",
    )
    max_header_bytes: int = Field(
        65536,
        ge=1024,
        le=2**24,
        description="A request's head (request line and headers) may hold at most this many bytes (431 and closed "
        "beyond).",
    )
    max_connections: int = Field(
        default_factory=default_max_connections,
        ge=1,
        le=1_000_000,
        description="Connections served at once: past it the connection that waited longest for a request (and "
        "sent none) is closed to make room, else the new one is answered 503 with Retry-After (/healthz and /readyz "
        "are served), and past twice it a connection is closed unanswered. Default: 512, fewer where the soft "
        "RLIMIT_NOFILE cannot hold twice as many plus 256 (`serve` refuses a value it cannot hold).",
    )
    max_series_per_model: int = Field(100_000, ge=1, description="Series one model may hold (409 beyond).")
    max_models: int = Field(100, ge=1, description="Models the service may hold (409 beyond).")
    max_model_bytes: int = Field(
        2 * 2**30,
        ge=1024,
        description="Memory one model may hold, by the library's estimate (tbptt_online.memory) plus each series' "
        "recent results (service/host/memory_budget.py): a config that does not fit is refused at creation (422), "
        "a batch that would add a series past it is refused (409).",
    )
    max_process_bytes: int = Field(
        4 * 2**30,
        ge=1024,
        description="Memory all the models together may hold, by the same estimate (409 past it: a new model, or a "
        "batch adding series).",
    )
    max_horizon: int = Field(1000, ge=1, le=1_000_000, description="Largest forecast horizon (422 beyond).")
    microbatch_max_observations: int = Field(
        10_000, ge=1, description="A micro-batch stops collecting requests once it holds this many observations."
    )
    microbatch_max_wait_ms: float = Field(
        2.0, ge=0.0, le=1000.0, description="How long a micro-batch waits for more requests after its first."
    )
    long_batch_chunk_ticks: int = Field(
        1,
        ge=1,
        le=1_000_000,
        description="A batch holding a request of several values of a series (several ticks of the model) is "
        "applied this many ticks at a time; the short requests that arrive meanwhile go between two chunks "
        "(a single observation waits for one chunk, not for the whole batch).",
    )
    max_gap_steps: int = Field(
        1000,
        ge=0,
        le=1_000_000,
        description="A timestamped series whose cadence is known (8 steps in a row within 25 %) and whose next "
        "value comes whole steps later gets the missing steps inserted before it (values null, on the grid), so "
        "its seasons keep their phase: at most this many per request (and 10x per batch of requests; a longer gap "
        "is shortened by whole seasons, or not filled). 0: never.",
    )
    torch_threads: int = Field(
        1,
        ge=1,
        le=1024,
        description="torch's intra-op threads, for the whole process: torch.set_num_threads at app start and in "
        "each thread the service starts for torch work; 'serve' also sets OMP_NUM_THREADS to it before torch loads "
        "(so every other thread gets it too). 1 by default: the model worker's small per-tick ops gain little from "
        "more, and extra threads compete with the event loop for the cores (2 threads on 2 cores made batch ingest "
        "1.4x to 8x slower, and a forecast in a thread that kept OpenMP's default took 80 ms instead of 1 ms). "
        "With 2 or more, a tick of at least 2,048 series also runs the library's compiled kernels over parts of "
        "its rows on that many threads (the same results).",
    )
    durable: bool = Field(
        True,
        description="Journal every change to state_dir/events.sqlite3 and checkpoint to state_dir/checkpoints "
        "(false: state in memory only, lost at exit).",
    )
    log_url: str | None = Field(
        None,
        min_length=1,
        description="Where the event log lives: unset, state_dir/events.sqlite3 (the embedded default); a "
        "postgresql:// URL, the log stream log_stream in that database (for a cluster: every node reaches it, and a "
        "writer from an older epoch is refused). Checkpoints stay in state_dir/checkpoints either way.",
    )
    front_start_wait_s: float = Field(
        600.0,
        gt=0.0,
        le=86400.0,
        description="A cluster front (--ray) that finds another front starting the cluster (creating its shards) waits "
        "at most this many seconds for it, then exits (2) saying so: a front stuck in its start no longer holds the "
        "others for good.",
    )
    lock_state_dir: bool = Field(
        True,
        description="Hold state_dir/lock: one process per state directory. A cluster's shards do not: with a "
        "PostgreSQL log a shard's owner and its warm standby share the directory, and the log's epochs fence an "
        "older writer. Read by a cluster's shards only: `serve` of one process always holds it.",
    )
    log_stream: str = Field(
        "default",
        min_length=1,
        max_length=200,
        description="The log stream of this process in a PostgreSQL log (one per shard); unused with SQLite.",
    )
    log_timeout_s: float = Field(
        5.0,
        gt=0.0,
        le=600.0,
        description="A PostgreSQL log's statement timeout: a statement without an answer by then (a partitioned "
        "connection, a frozen server) has its connection cut, and an append cut so refuses every later one until the "
        "shard restarts; unused with SQLite.",
    )
    log_sync: Literal["batch", "interval"] = Field(
        "batch",
        description="batch: fsync the event log before each batch is acknowledged (survives power loss); "
        "interval: fsync every log_sync_interval_ms (survives a process crash; a power loss may lose that interval).",
    )
    log_sync_interval_ms: int = Field(100, ge=1, le=60_000, description="The fsync period of log_sync=interval.")
    log_max_bytes: int | None = Field(
        None, ge=65_536, description="Cap on the event log's size (507 beyond, until a checkpoint prunes it)."
    )
    checkpoint_interval_s: float = Field(
        60.0, ge=0.0, description="Checkpoint every model this often when something changed (0: never by time)."
    )
    checkpoint_every_observations: int = Field(
        100_000, ge=0, description="Checkpoint once this many observations were logged since the last (0: never)."
    )
    checkpoints_kept: int = Field(
        3, ge=1, le=1000, description="Checkpoint files kept (the log is kept from the oldest one on)."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="Log verbosity.")

    @field_validator("state_dir", mode="before")
    @classmethod
    def _named_state_dir(cls, value: Any) -> Any:
        # not empty: Path("") is the working directory, and an env file's TBPTT_STATE_DIR= put the state wherever the
        # server was started (an operator's hostile test, session 58)
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a directory, not be empty (an empty one is the working directory)")
        return value

    @field_validator("api_key")
    @classmethod
    def _sendable_key(cls, value: str | None) -> str | None:
        return None if value is None else checked_api_key(value, ascii_only=False)  # (one no request could match
        # locked everyone out; a key past ASCII is matched as curl sends it)

    @field_validator("log_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"log_url={value!r} is invalid: must start with postgresql:// (or be unset for SQLite)")
        return value

    @field_validator("default_model")
    @classmethod
    def _valid_forecaster_config(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            ForecasterConfig.from_dict(value)  # ValueError names the field, the value and what is allowed
        except ConfigValueError as error:  # the value as the variable's JSON writes it (cell="xyz", not 'xyz')
            raise ValueError(config_problem(error)) from None
        return value

    def browser_hosts(self) -> frozenset[str]:
        """The names besides the loopback ones a browser may reach the service by: ``allowed_hosts``, and
        ``host`` where it names one address (not 0.0.0.0 or ::)."""
        names = {part for part in self.allowed_hosts.split(",") if part.strip()}  # (compared as ``host_name``s)
        if self.host not in ("0.0.0.0", "::"):
            names.add(self.host)
        return frozenset(names)

    def default_config(self) -> ForecasterConfig:
        return ForecasterConfig.from_dict(self.default_model)


# TBPTT_* variables that are not settings of the server: the CLI client's (feed, forecast, models)
CLIENT_VARIABLES = ("TBPTT_URL",)
# and the library's, read where a Forecaster is built (an audit, session 39: `serve` refused
# TBPTT_KEEP_FREED_MEMORY=1, which README's settings table lists, as an unknown setting)
LIBRARY_VARIABLES = (allocator.SWITCH,)


def unknown_variables(names: Iterable[str]) -> list[str]:
    """The ``TBPTT_*`` names (in any case, as pydantic-settings reads them) that are no
    setting, each with the closest setting's name where one is close: a misspelt setting
    (``TBPTT_MAX_BODY_BYTE``) was ignored without a word, the server started on the default.

    >>> unknown_variables(["TBPTT_PORT", "TBPTT_URL", "PATH", "TBPTT_MAX_BODY_BYTE", "TBPTT_NOPE"])
    ['TBPTT_MAX_BODY_BYTE (did you mean TBPTT_MAX_BODY_BYTES?)', 'TBPTT_NOPE']
    >>> unknown_variables(["TBPTT_KEEP_FREED_MEMORY", "TBPTT_KEEP_FREED_MEMORIES"])
    ['TBPTT_KEEP_FREED_MEMORIES (did you mean TBPTT_KEEP_FREED_MEMORY?)']
    """
    others = (*CLIENT_VARIABLES, *LIBRARY_VARIABLES)
    known = [field.upper() for field in Settings.model_fields] + [v.removeprefix("TBPTT_") for v in others]
    unknown = []
    for name in names:
        upper = name.upper()
        if upper.startswith("TBPTT_") and upper.removeprefix("TBPTT_") not in known:
            close = difflib.get_close_matches(upper.removeprefix("TBPTT_"), known, n=1)  # past the common prefix
            unknown.append(f"{name} (did you mean TBPTT_{close[0]}?)" if close else name)
    return unknown
