"""Issue 16 item 1: getting the model through ``HF_ENDPOINT`` (a hub on 127.0.0.1 serving the tiny model),
verified, resumed after a kill or a dropped connection, refused when the disk is too small, and the one offline
message when no source can be reached. No network other than 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest

from medllm_core.kernel.errors import Location
from medllm_core.library.model_fetch import fetch_hf, human_size
from medllm_core.library.model_resume import partial_path
from medllm_core.library.model_source import source_line, strip_credentials
from medllm_core.library.tiny_model import build_tiny_model
from tests.conftest import REPO, read_events, run_cli
from tests.hub_server import FakeHub, serve

PROFILE = "profiles/cpu_tiny.toml"
REPO_ID = "medllm-test/tiny-qwen2-hub"
WEIGHTS = "model.safetensors"
NOT_PREFLIGHT = ("sft", "dpo", "simpo", "kto", "eval", "llm_judge", "risk_judge", "completion_check",
                 "method_comparison", "thesis_reports", "readiness")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served") / "model"
    build_tiny_model(folder, [REPO / "data" / "samples" / "sft_medical_drills_zh_en.jsonl"])
    return folder


def _closed_port() -> str:
    """An address where nothing listens: what a blocked huggingface.co looks like from the box."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """An empty HF cache in tmp, the hub at ``endpoint``, no proxy, ModelScope unreachable too."""
    hf = tmp_path / "hf"
    env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(hf), "HF_HUB_CACHE": str(hf / "hub"), "HF_HUB_OFFLINE": "",
           "HF_TOKEN": "", "HF_HUB_DISABLE_TELEMETRY": "1", "MODELSCOPE_CACHE": str(tmp_path / "ms"),
           "MODELSCOPE_DOMAIN": _closed_port(), "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
           "http_proxy": "", "https_proxy": "", "HTTP_PROXY": "", "HTTPS_PROXY": "", "all_proxy": "", "ALL_PROXY": ""}
    env.update(extra)
    return env


def _snapshot(tmp_path: Path, hub: FakeHub) -> Path:
    return tmp_path / "hf" / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / hub.commit


def _file_gets(hub: FakeHub, name: str) -> list[str]:
    """The Range header of every GET of ``name`` (empty string: the whole file)."""
    return [ranged for method, path, ranged in hub.requests if method == "GET" and path.endswith(f"/{name}")]


def _assert_same_as_served(folder: Path, hub: FakeHub) -> None:
    for name, served in hub.files.items():
        data = (folder / name).read_bytes()
        assert len(data) == len(served.data), name
        if served.sha256:
            assert hashlib.sha256(data).hexdigest() == served.sha256, name
        else:
            assert hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest() == served.blob_id, name  # noqa: S324


def _fetch(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(["model", "fetch", PROFILE, "--model", REPO_ID, "--no-progress"], env=env, timeout=120)


def test_fetch_verifies_a_second_is_a_noop_and_the_run_uses_the_copy_offline(tmp_path, model_folder):
    hub = FakeHub.from_folder(REPO_ID, model_folder)
    server, url = serve(hub)
    try:
        first = _fetch(_env(tmp_path, url))
        assert first.returncode == 0, first.stdout + first.stderr
        snapshot = _snapshot(tmp_path, hub)
        assert f"local copy: {snapshot} (the run uses it)" in first.stdout
        assert f"{len(hub.files)} files" in first.stdout and f"{len(hub.files)} verified" in first.stdout
        assert _file_gets(hub, WEIGHTS) == [""]
        _assert_same_as_served(snapshot, hub)

        hub.requests.clear()
        second = _fetch(_env(tmp_path, url))
        assert second.returncode == 0, second.stdout + second.stderr
        assert "0.0 MiB downloaded" in second.stdout and f"local copy: {snapshot}" in second.stdout
        assert not [p for _, p, _ in hub.requests if "/resolve/" in p]  # nothing downloaded again
    finally:
        server.shutdown()

    # The hub is gone now (a closed port): the run finds the copy from the repo id alone, and preflight.json
    # reports HF_ENDPOINT and the proxies with the proxy password stripped.
    out = tmp_path / "out"
    proxy = "http://student:s3cret@127.0.0.1:3128"
    offline = _closed_port()
    flags = [arg for name in NOT_PREFLIGHT for arg in ("--set", f"stages.{name}.enabled=false")]
    run = run_cli(["--run", PROFILE, "--model", REPO_ID, "--output-root", str(out), *flags],
                  env=_env(tmp_path, offline, https_proxy=proxy, HTTPS_PROXY=proxy), timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "decision model_source: model from HF hub" in run.stdout and "cached at" in run.stdout
    decision = next(e for e in read_events(out) if e.get("kind") == "model_source")
    assert decision["facts"] == {"source": "hf", "cached": True, "local_path": str(snapshot)}
    text = next(out.glob("reports/**/preflight.json")).read_text(encoding="utf-8")
    assert "s3cret" not in text and "student" not in text
    source = json.loads(text)["model_source"]
    assert source["local_path"] == str(snapshot) and source["cached"] is True
    assert source["environment"]["HF_ENDPOINT"] == offline
    assert source["environment"]["https_proxy"] == source["environment"]["HTTPS_PROXY"] == "http://127.0.0.1:3128"
    assert json.loads(text)["gate"]["custom_model"]["size_known"] is True  # sized from the cached config.json


def _cli_env(env: dict[str, str]) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if k not in ("MODEL_NAME", "MODEL_TIER", "DRY_RUN")}
    full["MEDLLM_ENV_FILE"] = str(REPO / ".env.test-absent")
    full.update(env)
    return full


def test_a_killed_fetch_continues_where_it_stopped(tmp_path, model_folder):
    stall = threading.Event()
    hub = FakeHub.from_folder(REPO_ID, model_folder, stall_first=stall)
    served = hub.files[WEIGHTS]
    half = len(served.data) // 2
    server, url = serve(hub)
    env = _env(tmp_path, url)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "medllm_tui", "model", "fetch", PROFILE, "--model", REPO_ID,
                                 "--no-progress"], cwd=REPO, env=_cli_env(env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        part = partial_path(Path(env["HF_HUB_CACHE"]), REPO_ID, served.sha256 or "")
        deadline = time.monotonic() + 60
        while not (part.is_file() and part.stat().st_size == half) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()  # mid-file, like an SSH drop or a preempted box
        proc.wait(timeout=30)
        assert part.stat().st_size == half  # what came before the kill is kept
        stall.set()

        again = _fetch(env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert _file_gets(hub, WEIGHTS)[-1] == f"bytes={half}-"  # continued, not restarted
        rest = sum(len(f.data) for f in hub.files.values()) - half  # the small files came after the weights
        assert f"{human_size(rest)} downloaded" in again.stdout
        assert not part.exists()
        _assert_same_as_served(_snapshot(tmp_path, hub), hub)
    finally:
        stall.set()
        server.shutdown()


def test_a_dropped_connection_is_resumed_in_the_same_fetch(tmp_path, model_folder, monkeypatch):
    hub = FakeHub.from_folder(REPO_ID, model_folder, truncate_first=True)
    server, url = serve(hub)
    for key, value in _env(tmp_path, url).items():
        monkeypatch.setenv(key, value)
    try:
        assert source_line(REPO_ID) == f"model from HF hub {url}, not cached yet"  # the wizard's line
        result = fetch_hf(REPO_ID, Location(key="model.name_or_path"), progress=False)
    finally:
        server.shutdown()
    half = len(hub.files[WEIGHTS].data) // 2
    assert _file_gets(hub, WEIGHTS) == ["", f"bytes={half}-"]
    assert result.verified == len(hub.files) and result.local_path == _snapshot(tmp_path, hub)
    _assert_same_as_served(result.local_path, hub)
    assert source_line(REPO_ID) == f"model from HF hub {url}, cached on this machine"  # disk only, server is down


def test_not_enough_disk_is_refused_before_any_download(tmp_path, model_folder, monkeypatch, capsys):
    from medllm_tui.cli import main

    hub = FakeHub.from_folder(REPO_ID, model_folder)
    server, url = serve(hub)
    for key, value in _env(tmp_path, url).items():
        monkeypatch.setenv(key, value)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 1024**2, 9 * 1024**2, 1024**2 // 10))
    try:
        code = main(["model", "fetch", PROFILE, "--model", REPO_ID, "--no-progress"])
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    need = human_size(sum(len(f.data) for f in hub.files.values()))
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"not enough disk for the model: needs {need}, 0.1 MiB free at " in errors[0], err
    assert "HF_HOME=/root/autodl-tmp/hf" in errors[0]
    assert not [p for _, p, _ in hub.requests if "/resolve/" in p]
    assert not list((tmp_path / "hf").rglob("blobs/*"))


def _assert_ways_out(line: str) -> None:
    assert f"cannot get model '{REPO_ID}' from any source" in line, line
    assert "HF_ENDPOINT=https://hf-mirror.com" in line
    assert 'model.source = "modelscope"' in line and "pip install '.[modelscope]'" in line
    assert "a local folder (--model /path/to/model)" in line


def test_no_reachable_source_fails_before_any_stage_with_the_three_ways_out(tmp_path):
    env = _env(tmp_path, _closed_port())
    out = tmp_path / "out"
    run = run_cli(["--run", PROFILE, "--model", REPO_ID, "--output-root", str(out)], env=env, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    _assert_ways_out(errors[0])
    assert "Traceback" not in run.stdout + run.stderr
    assert "▶" not in run.stdout and not list(out.glob("reports/**/preflight.json"))  # no stage started

    fetch = _fetch(env)
    assert fetch.returncode == 2, fetch.stdout + fetch.stderr
    _assert_ways_out([line for line in fetch.stderr.splitlines() if line.startswith("error:")][0])

    dry = run_cli(["--run", PROFILE, "--model", REPO_ID, "--output-root", str(out), "--dry-run"], env=env,
                  timeout=120)
    assert dry.returncode == 0, dry.stdout + dry.stderr  # the dry run plans, and says what the real run would do
    warning = next(e for e in read_events(out) if e.get("level") == "warning" and "real run" in e.get("message", ""))
    _assert_ways_out(warning["message"])


def test_proxy_credentials_never_reach_a_report():
    assert strip_credentials("http://user:pass@10.0.0.1:3128") == "http://10.0.0.1:3128"
    assert strip_credentials("socks5h://token@proxy.example:1080/") == "socks5h://proxy.example:1080/"
    assert strip_credentials("https://hf-mirror.com") == "https://hf-mirror.com"


def test_a_name_the_hub_does_not_have_is_one_error_line(tmp_path, model_folder, monkeypatch, capsys):
    from medllm_tui.cli import main

    hub = FakeHub.from_folder(REPO_ID, model_folder)
    server, url = serve(hub)
    for key, value in _env(tmp_path, url).items():
        monkeypatch.setenv(key, value)
    try:
        code = main(["model", "fetch", PROFILE, "--model", "medllm-test/typo", "--no-progress"])
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {REPO / PROFILE}, key 'model.name_or_path': model 'medllm-test/typo' (revision main) not available "
        f"at {url} (HTTP 404) (check model.name_or_path; a gated model needs HF_TOKEN)"]
