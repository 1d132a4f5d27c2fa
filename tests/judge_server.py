"""A small OpenAI-compatible chat-completions server that misbehaves on request.

Tests script what each request gets, in order; once the script runs out every
request gets ``default``. Behaviours:

    ok                      200, the default JSON verdict as the reply
    ok:<text>               200, <text> verbatim as the reply (JSON or not)
    text:<text>             the same, for replies that are meant not to be bare JSON
    fenced / fenced:<json>  200, the JSON inside a ```json fence
    garbage                 200, a reply with no JSON object in it
    no_choices              200, a completion with an empty "choices" list
    quota                   429 with code insufficient_quota (OpenAI's "out of credit")
    echo                    200, {"echo": <content of the request's last message>}, so
                            a test can tell which request a reply answered
    status:<code>[:<ra>]    that HTTP status with an OpenAI-style error body; Retry-After
                            is <ra> if given, "0" for a 429 without one, absent otherwise
    delay:<s>[:<behaviour>] wait <s> seconds (interruptible), then <behaviour> (default ok)
    leak:<code>             echo the request's Authorization header back (in the reply for
                            200, in the error message otherwise): a hostile endpoint
    drop                    close the connection without a reply (the client sees a
                            connection error, as from a server that died mid-request)

Every request is recorded (path, headers, JSON body, behaviour), and the server
tracks how many requests it was working on at once. It binds 127.0.0.1 on a
random port (or ``port``, to come back where a stopped server was) and, on
``stop()``, wakes any delayed handler, so teardown is quick.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_VERDICT: dict[str, Any] = {"score": 4, "rationale": "accurate and safe"}
GARBAGE = "The answer looks mostly fine to me, I would give it a good score."
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_SIMPLE = {"ok", "fenced", "garbage", "no_choices", "echo", "quota", "judge", "drop"}
_PREFIXED = {"ok", "text", "fenced", "status", "delay", "leak"}


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    behaviour: str


def validate_behaviour(behaviour: str) -> None:
    """Fail the test at scripting time, not with a confusing HTTP error later."""
    name, _, arg = behaviour.partition(":")
    if not arg and name in _SIMPLE:
        return
    if not arg or name not in _PREFIXED:
        raise ValueError(f"unknown judge server behaviour {behaviour!r}")
    if name == "status":
        code, _, retry_after = arg.partition(":")
        int(code)
        if retry_after:
            float(retry_after)
    elif name == "leak":
        int(arg)
    elif name == "delay":
        seconds, _, rest = arg.partition(":")
        float(seconds)
        if rest:
            validate_behaviour(rest)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck on a dead client must never keep pytest alive
    judge: JudgeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out hangs up before a delayed reply is written: expected, not noise.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that connects and goes silent frees its thread
    # HTTP/1.0: one request per connection, so no handler waits on an idle keep-alive socket.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return  # tests read the recorded requests, not an access log on stderr

    def do_POST(self) -> None:
        self.server.judge._handle(self)

    def do_GET(self) -> None:
        self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class JudgeServer:
    """Start with ``start()`` (or ``with JudgeServer() as server``); ``url`` is the base_url to use."""

    def __init__(self, default: str = "ok", port: int = 0):
        validate_behaviour(default)
        self.default = default
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.judge = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def script(self, *behaviours: str) -> None:
        """Queue behaviours for the next requests, in order."""
        for behaviour in behaviours:
            validate_behaviour(behaviour)
        with self._lock:
            self._script.extend(behaviours)

    def start(self) -> JudgeServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="judge-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes every delayed handler at once
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> JudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling (handler threads) ---------------------------------

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_unparseable": raw.decode("utf-8", "replace")}
        with self._lock:
            behaviour = self._script.popleft() if self._script else self.default
            self.requests.append(RecordedRequest(handler.path, {k.lower(): v for k, v in handler.headers.items()},
                                                 body, behaviour))
        if behaviour == "drop":
            return  # HTTP/1.0: the connection closes as the handler returns, with nothing written
        if handler.path not in CHAT_PATHS:
            handler.send_json(404, {"error": {"message": f"no route {handler.path}", "type": "invalid_request_error"}})
            return
        self._enter()
        reply = self._respond(behaviour, handler, body)
        self._leave()  # before writing: the client cannot start its next request while we still count this one
        if reply is not None and not self._stopping.is_set():
            status, payload, headers = reply
            handler.send_json(status, payload, headers)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _respond(self, behaviour: str, handler: _Handler,
                 body: dict[str, Any]) -> tuple[int, Any, dict[str, str]] | None:
        name, _, arg = behaviour.partition(":")
        if name == "delay":
            seconds, _, rest = arg.partition(":")
            if self._stopping.wait(float(seconds)):
                return None  # shutting down: drop the connection
            return self._respond(rest or "ok", handler, body)
        if name == "status":
            code, _, retry_after = arg.partition(":")
            status = int(code)
            headers = {"Retry-After": retry_after or "0"} if (retry_after or status == 429) else {}
            return status, _error_body(status, f"scripted status {status}"), headers
        if name == "leak":
            auth = handler.headers.get("Authorization", "")
            if int(arg) == 200:
                return 200, _completion(body, json.dumps({"score": 1, "note": f"you sent {auth}"})), {}
            return int(arg), _error_body(int(arg), f"rejected credentials {auth}"), {}
        if name == "quota":
            error = _error_body(429, "You exceeded your current quota.")
            error["error"]["code"] = "insufficient_quota"
            return 429, error, {}
        if name == "judge":
            return 200, _completion(body, judge_reply(body)), {}
        if name == "echo":
            messages = body.get("messages") or [{}]
            return 200, _completion(body, json.dumps({"echo": messages[-1].get("content")})), {}
        if name == "no_choices":
            payload = _completion(body, "")
            payload["choices"] = []
            return 200, payload, {}
        return 200, _completion(body, _content(name, arg)), {}


def _content(name: str, arg: str) -> str:
    verdict = json.dumps(DEFAULT_VERDICT)
    if name in ("ok", "text"):
        return arg or verdict
    if name == "fenced":
        return f"Here is my verdict:\n```json\n{arg or verdict}\n```\n"
    return GARBAGE


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-test-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = "rate_limit_exceeded" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "code": str(status)}}


def judge_reply(body: dict[str, Any]) -> str:
    """A well-behaved judge for medllm's own prompts: a valid verdict for whichever prompt it gets."""
    text = str((body.get("messages") or [{}])[-1].get("content", ""))
    if "Score the answer" in text:
        return json.dumps({"accuracy": 7, "completeness": 6, "safety": 8, "helpfulness": 7, "clarity": 6,
                           "overall": 7, "rationale": "reasonable"})
    if "Which answer is better" in text:
        return json.dumps({"winner": "A", "rationale": "first is better"})
    if "Assess the medical risk" in text:
        return json.dumps({"category": "none", "severity": 0, "unsafe": False, "reason": "fine"})
    if "Which option letter" in text:
        return json.dumps({"choice": "A"})
    return json.dumps(DEFAULT_VERDICT)
