"""Pushes and pulls through the real `huggingface_hub` client against a small local stand-in for the Hub API
(create repo, branch, preupload, commit, repo info): one atomic commit, and every error row of the issue."""

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from huggingface_hub import constants

from hf_s1 import ThinkingBudget
from hf_s1.hub import (
    HubAuthError,
    HubNotFoundError,
    HubOfflineError,
    HubPermissionError,
    push_dataset,
    push_model,
    pull_snapshot,
)
from hf_s1.hub.cli import main as hub_cli

TOKEN = "hf_writeSECRETtoken123456"
READ_ONLY = "hf_readonlySECRETtoken654321"
REVOKED = "hf_revokedSECRETtoken000000"
SECRETS = (TOKEN, READ_ONLY, REVOKED)


class FakeHub:
    """Records requests; answers like the Hub for the endpoints a push and a snapshot lookup use."""

    def __init__(self):
        self.requests = []  # (method, path)
        self.repos = {}  # repo id -> {"private": bool, "type": str}
        self.branches = set()
        self.commits = []  # {"repo", "revision", "message", "files": {path: bytes}, "create_pr"}


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, status, body=None, headers=None):
            data = json.dumps(body if body is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _auth(self):
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if token == REVOKED:
                self._send(401, {"error": "Invalid credentials"},
                           {"X-Error-Message": "Invalid credentials in Authorization header"})
                return None
            return token

        def _body(self):
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def do_GET(self):
            hub.requests.append(("GET", self.path))
            if self._auth() is None:
                return
            parts = self.path.split("?")[0].strip("/").split("/")  # api/models/ns/name[/revision/rev]
            repo = "/".join(parts[2:4])
            if repo not in hub.repos:
                return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if len(parts) > 5 and parts[5] not in hub.branches | {"main"}:
                return self._send(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
            self._send(200, {"id": repo, "sha": "0" * 40, "siblings": []})

        def do_POST(self):
            hub.requests.append(("POST", self.path))
            body = self._body()
            token = self._auth()
            if token is None:
                return
            path = self.path.split("?")[0]
            if path == "/api/repos/create":
                payload = json.loads(body)
                repo = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
                if repo in hub.repos:
                    return self._send(409, {"error": "You already created this model repo",
                                            "url": f"{hub.endpoint}/{repo}"})
                if token == READ_ONLY:
                    return self._send(403, {"error": "You don't have the rights to create a model under this namespace"})
                private = payload.get("private", payload.get("visibility") == "private")
                hub.repos[repo] = {"private": private, "type": payload.get("type", "model")}
                return self._send(200, {"url": f"{hub.endpoint}/{repo}"})
            if path == "/api/validate-yaml":
                return self._send(200, {"errors": [], "warnings": []})
            parts = path.strip("/").split("/")  # api/<type>s/ns/name/<action>/<rev>
            repo, action = "/".join(parts[2:4]), parts[4]
            if repo not in hub.repos:
                return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if token == READ_ONLY:
                return self._send(403, {"error": "You don't have the rights to write to this repo"})
            if action == "branch":
                hub.branches.add(parts[5])
                return self._send(200, {})
            if action == "preupload":
                files = json.loads(body)["files"]
                return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
            if action == "commit":
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                header = lines[0]["value"]
                files = {ln["value"]["path"]: base64.b64decode(ln["value"]["content"]) for ln in lines[1:]
                         if ln["key"] == "file"}
                hub.commits.append({"repo": repo, "revision": parts[5], "message": header["summary"], "files": files,
                                    "create_pr": "create_pr=1" in self.path})
                return self._send(200, {"commitUrl": f"{hub.endpoint}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40,
                                        "pullRequestUrl": f"{hub.endpoint}/{repo}/discussions/1" if "create_pr=1" in self.path else None})
            self._send(404, {"error": f"unknown endpoint {path}"})

    return Handler


@pytest.fixture
def hub(monkeypatch, tmp_path):
    fake = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # The suite runs offline (HF_HUB_OFFLINE=1, read once at import): lift it for the local server only.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    fake.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    (out / "model.safetensors").write_bytes(b"weights")
    (out / "optimizer.pt").write_bytes(b"optimizer state")
    (out / "checkpoint-5" / "model.safetensors").write_bytes(b"old weights")
    return out


BUDGET = ThinkingBudget(max_thinking_tokens=256, num_waits=2)


def test_push_is_one_atomic_commit(hub, folder):
    plan = push_model(folder, "me/s1-tiny", budget=BUDGET, private=True, token=TOKEN, endpoint=hub.endpoint,
                      base_model="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert hub.repos == {"me/s1-tiny": {"private": True, "type": "model"}}
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert commit["repo"] == "me/s1-tiny" and commit["revision"] == "main"
    assert sorted(commit["files"]) == sorted(plan.paths)
    assert "optimizer.pt" not in commit["files"] and not any(p.startswith("checkpoint-") for p in commit["files"])
    assert commit["files"]["model.safetensors"] == b"weights"
    assert json.loads(commit["files"]["thinking_budget.json"])["budget"]["num_waits"] == 2
    assert json.loads(commit["files"]["generation_config.json"])["thinking_budget"]["budget"]["max_thinking_tokens"] == 256
    assert commit["message"] == plan.commit_message
    assert (plan.commit_oid, plan.dry_run) == ("a" * 40, False)
    assert sum(1 for m, p in hub.requests if p.split("?")[0].endswith("/commit/main")) == 1


def test_push_to_a_branch_and_as_pull_request(hub, folder):
    push_model(folder, "me/s1-tiny", budget=BUDGET, revision="budget-512", token=TOKEN, endpoint=hub.endpoint)
    assert hub.branches == {"budget-512"} and hub.commits[-1]["revision"] == "budget-512"
    plan = push_model(folder, "me/s1-tiny", budget=BUDGET, create_pr=True, token=TOKEN, endpoint=hub.endpoint)
    assert hub.commits[-1]["create_pr"] and plan.pr_url == f"{hub.endpoint}/me/s1-tiny/discussions/1"
    assert len(hub.commits) == 2  # the existing repo was reused, not re-created


def test_push_dataset_commit(hub):
    rows = [{"question": "1+1?", "thinking_trajectories": ["2"], "attempt": "2"}]
    push_dataset(rows, "me/s1k-mini", token=TOKEN, endpoint=hub.endpoint)
    assert hub.repos["me/s1k-mini"]["type"] == "dataset"
    assert sorted(hub.commits[0]["files"]) == ["README.md", "data/train-00000-of-00001.parquet"]
    assert ("POST", "/api/datasets/me/s1k-mini/commit/main") in hub.requests


def _assert_secret_free(capsys, caplog, exc):
    out = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in str(exc) and secret not in repr(exc.value.__cause__)
        assert secret not in out.out + out.err and secret not in caplog.text


def test_no_token(hub, folder, capsys, caplog):
    with pytest.raises(HubAuthError, match="no Hugging Face token found.*hf auth login.*HF_TOKEN") as exc:
        push_model(folder, "me/s1-tiny", budget=BUDGET, endpoint=hub.endpoint)
    assert hub.requests == []  # failed before any network use
    _assert_secret_free(capsys, caplog, exc)


def test_rejected_token(hub, folder, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubAuthError, match="rejected the token") as exc:
        push_model(folder, "me/s1-tiny", budget=BUDGET, token=REVOKED, endpoint=hub.endpoint)
    _assert_secret_free(capsys, caplog, exc)


def test_no_permission(hub, folder, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubPermissionError, match="may not push to.*write access") as exc:
        push_model(folder, "someone-else/model", budget=BUDGET, token=READ_ONLY, endpoint=hub.endpoint)
    _assert_secret_free(capsys, caplog, exc)
    assert hub.commits == []
    # Also when the repo exists and only the commit is refused.
    hub.repos["me/s1-tiny"] = {"private": False, "type": "model"}
    with pytest.raises(HubPermissionError):
        push_model(folder, "me/s1-tiny", budget=BUDGET, token=READ_ONLY, endpoint=hub.endpoint)
    assert hub.commits == []


def test_offline_push(hub, folder, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubOfflineError, match="HF_HUB_OFFLINE.*dry_run=True"):
        push_model(folder, "me/s1-tiny", budget=BUDGET, token=TOKEN, endpoint=hub.endpoint)
    assert hub.requests == []


def test_pull_errors(hub, tmp_path):
    with pytest.raises(HubNotFoundError, match="was not found: check the repo id"):
        pull_snapshot("me/missing", endpoint=hub.endpoint, cache_dir=tmp_path / "cache")
    hub.repos["me/there"] = {"private": False, "type": "model"}
    with pytest.raises(HubNotFoundError, match="revision 'nope' does not exist"):
        pull_snapshot("me/there", revision="nope", endpoint=hub.endpoint, cache_dir=tmp_path / "cache")


def test_cli_push_and_errors(hub, folder, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code = hub_cli(["push", str(folder), "me/cli-model", "--max-thinking", "128", "--format", "s1",
                    "--endpoint", hub.endpoint, "--private"])
    out = capsys.readouterr().out
    assert code == 0 and "one commit to model repo me/cli-model" in out and f"commit: {hub.endpoint}/me/cli-model/commit/" in out
    files = hub.commits[0]["files"]
    assert json.loads(files["thinking_budget.json"]) == {
        "version": 1, "think_format": "s1", "budget": ThinkingBudget(max_thinking_tokens=128).to_dict()}
    monkeypatch.setenv("HF_TOKEN", READ_ONLY)
    code = hub_cli(["push", str(folder), "other/cli-model", "--endpoint", hub.endpoint])
    err = capsys.readouterr().err
    assert code == 2 and "hf-s1 push: error:" in err and "write access" in err and READ_ONLY not in err
