"""Settings from TBPTT_* environment variables: defaults, JSON for the default model, validation."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tbptt_online import ForecasterConfig
from tbptt_service.descriptors import RAISED_LIMIT, descriptors_needed, reserved
from tbptt_service.settings import Settings


def test_defaults_are_documented_and_safe() -> None:
    s = Settings()
    assert (s.host, s.port, s.state_dir, s.api_key) == ("127.0.0.1", 8000, Path("state"), None)
    assert s.default_config() == ForecasterConfig()
    assert s.max_batch_observations <= s.microbatch_max_observations
    assert all(field.description for field in Settings.model_fields.values())


def test_environment_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TBPTT_PORT", "9123")
    monkeypatch.setenv("TBPTT_DEFAULT_MODEL", '{"cell": "lstm", "hidden_size": 16}')
    monkeypatch.setenv("TBPTT_MICROBATCH_MAX_WAIT_MS", "0.5")
    monkeypatch.setenv("TBPTT_API_KEY", "k")
    s = Settings()
    assert (s.port, s.microbatch_max_wait_ms, s.api_key) == (9123, 0.5, "k")
    assert s.default_config() == ForecasterConfig(cell="lstm", hidden_size=16)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("TBPTT_PORT", "70000", "port"),
        ("TBPTT_DEFAULT_MODEL", '{"k1": 0}', "k1=0 is invalid"),
        ("TBPTT_DEFAULT_MODEL", '{"hidden": 8}', "unknown config field(s) ['hidden']"),
        ("TBPTT_MAX_BODY_BYTES", "10", "max_body_bytes"),
        ("TBPTT_LOG_LEVEL", "loud", "log_level"),
        ("TBPTT_API_KEY", "", "api_key"),
        ("TBPTT_API_KEY", "s3cret ", "api_key is invalid: a space at its end"),  # locked everyone out (session 50)
        ("TBPTT_API_KEY", " s3cret", "api_key is invalid: a space at its start"),
        ("TBPTT_API_KEY", "s3c\x01ret", "api_key is invalid: the control character '.x01' at position 3"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch, variable, value, fragment) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Settings()


@pytest.mark.parametrize("key", ["my secret", "sécret"])
def test_an_api_key_a_request_can_carry_is_taken_as_it_was_before(monkeypatch: pytest.MonkeyPatch, key) -> None:
    # a review (session 50): a space inside a key, or a character past ASCII, is matched as curl sends it
    monkeypatch.setenv("TBPTT_API_KEY", key)
    assert Settings().api_key == key


@pytest.mark.parametrize(
    ("soft", "cap"), [(resource.RLIM_INFINITY, 512), (20_000, 512), (1024, 384), (256, 96), (64, 24), (40, 16)]
)
def test_the_connection_caps_default_leaves_the_process_its_descriptors(monkeypatch, soft, cap) -> None:
    # a hostile test (session 60, F7): 21,000 idle connections took every descriptor; checkpoints failed
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, resource.RLIM_INFINITY))
    assert Settings().max_connections == cap
    assert soft == resource.RLIM_INFINITY or cap == 16 or descriptors_needed(cap, soft) <= soft


def test_serve_raises_a_low_soft_descriptor_limit_before_the_cap_is_derived() -> None:
    # a review (session 61): a soft limit of 256 (macOS's) left no room for the default cap, and serve refused to
    # start; serve raises the soft limit toward the hard one first (in a child: the limit is the process's)
    code = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from tbptt_service.descriptors import RAISED_LIMIT, default_max_connections, raise_descriptor_limit\n"
        "raise_descriptor_limit()\n"
        "raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "expected = RAISED_LIMIT if hard == resource.RLIM_INFINITY else min(hard, RAISED_LIMIT)\n"
        "print(raised == max(256, expected), default_max_connections())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = RAISED_LIMIT if hard == resource.RLIM_INFINITY else max(256, min(hard, RAISED_LIMIT))
    assert done.stdout.split() == ["True", str(max(16, min(512, (limit - reserved(limit)) // 2)))]
