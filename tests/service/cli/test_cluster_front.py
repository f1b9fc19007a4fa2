"""``serve --ray``'s front refuses a shard count other than the one the cluster was built with."""

from __future__ import annotations

from tbptt_service.cli.cluster import serve_front
from tbptt_service.settings import Settings
from tbptt_service.storage.postgres_log import PostgresLog, claim_shard_count


def test_the_first_shard_count_claimed_is_the_clusters_for_good(postgres_url: str) -> None:
    assert claim_shard_count(postgres_url, 2) == 2
    assert claim_shard_count(postgres_url, 3) == 2  # recorded: not replaced
    assert claim_shard_count(postgres_url, 2) == 2


def test_a_cluster_from_before_the_record_keeps_the_count_its_streams_show(postgres_url: str) -> None:
    # the review of session 36: the first front after an upgrade recorded whatever --shards it had
    for index in range(3):
        with PostgresLog(postgres_url, stream=f"shard-{index}"):
            pass
    assert claim_shard_count(postgres_url, 2) == 3


def test_a_front_with_another_shard_count_is_refused_before_it_joins_the_cluster(postgres_url: str, capsys) -> None:
    # A hostile test (session 36): a front started with --shards 3 beside a cluster of 2 joined it
    # silently, found model 'a0' unknown (sha256 mod 3 is another shard), created a second 'a0' and
    # listed the name twice. Refused before Ray is reached (the address is never used).
    claim_shard_count(postgres_url, 2)
    settings = Settings(log_url=postgres_url)
    assert serve_front(settings, "127.0.0.1:1", 3) == 2
    error = capsys.readouterr().err
    assert "--shards 3 does not match the cluster's 2 shards" in error
    assert "start every front with --shards 2" in error
    assert postgres_url.rsplit("@", 1)[-1] not in error  # the database's address (and password) not shown


def test_a_front_that_cannot_reach_the_database_says_so(capsys) -> None:
    settings = Settings(log_url="postgresql://nobody@127.0.0.1:1/none")
    assert serve_front(settings, "127.0.0.1:1", 2) == 1
    assert "cannot read the cluster's shard count from the log's database" in capsys.readouterr().err
