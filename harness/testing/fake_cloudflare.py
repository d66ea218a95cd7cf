"""A fake Cloudflare Workers AI (and OpenAI-compatible) HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks the real envelope, checks the bearer token and the body's shape, answers from a reply
function, and injects faults on demand. Routes are a table, so later modules (deploy's finetune
endpoints) add theirs with `route(...)`.

    with FakeCloudflare(reply=lambda body: "ok") as cf:
        cf.inject(Fault("429", retry_after=0.1))
        ... CloudflareBackend(..., api_base=cf.api_base)
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

# Cloudflare error code -> (HTTP status, message), as the live API answers them (docs/platform-notes.md).
CF_ERRORS = {
    5007: (400, "No such model"),
    5005: (405, "Model does not support LoRA"),
    3039: (400, "Finetune is missing required files"),
    3037: (404, "Finetune not found"),
    5016: (403, "You must agree to the model's terms"),
    3036: (429, "You have used up your daily free allocation of 10,000 neurons"),
    3040: (429, "Capacity temporarily exceeded, please try again"),
    3007: (408, "Request timeout"),
    3008: (408, "Request aborted"),
    3006: (413, "Request is too large"),
    10000: (401, "Authentication error"),
    5006: (400, "Invalid input"),
}
ROLES = {"system", "user", "assistant", "tool"}

Handler = Callable[["FakeRequest"], tuple[int, dict[str, str], Any]]


@dataclass
class Fault:
    """A failure to serve instead of the normal answer, `times` times, to requests containing `match`.

    kind: "429" (with Retry-After: `retry_after` seconds, or the raw `retry_after_text`), "500" (a non-JSON
    HTML body), "slow" (sleep `delay_s`, then answer), "drop" (close the connection without a response),
    "drop_after" (do what was asked, then close the connection without answering: a lost reply),
    "cf_error" (`success: false` with `code`), "bad_200" (HTTP 200 with a body that is not a reply:
    `body` as JSON (raw when bytes), or an HTML page when `body` is None; `headers` added, e.g. a
    `Content-Encoding: gzip` the body does not honour).
    With `echo_auth` on the server, every body it makes also carries the request's Authorization header.
    """

    kind: str
    times: int = 1
    code: int | None = None
    retry_after: float | None = None
    retry_after_text: str | None = None
    body: Any = None
    delay_s: float = 0.0
    match: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    params: dict[str, str] = field(default_factory=dict)


def envelope(result: Any = None, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"result": result, "success": not errors, "errors": errors or [], "messages": []}


def cf_error(code: int, message: str | None = None) -> tuple[int, dict[str, str], Any]:
    status, default = CF_ERRORS.get(code, (400, "error"))
    return status, {}, envelope(None, [{"code": code, "message": message or default}])


class FakeCloudflare:
    def __init__(
        self,
        *,
        token: str = "test-token-0123456789",
        account_id: str = "acct0123",
        reply: Callable[[dict[str, Any]], str] = lambda body: "Hello! How can I help?",
        models: set[str] | None = None,
        lora_models: set[str] | None = None,
        finetunes: set[str] | None = None,
        served_models: set[str] | None = None,
        openai_key: str | None = None,
        delay_s: float = 0.0,
        usage: bool = True,
        echo_token_in_errors: bool = False,
        echo_auth: bool = False,
        tokenizer: Any = None,
    ) -> None:
        self.token, self.account_id, self.reply = token, account_id, reply
        self.models, self.lora_models, self.finetunes = models, lora_models, finetunes
        self.served_models, self.openai_key = served_models, openai_key
        self.delay_s, self.usage, self.echo_token_in_errors = delay_s, usage, echo_token_in_errors
        # A hostile server: the Authorization header it got goes back in every body it makes (errors, HTML
        # pages, replies, usage, deploy's create reply), to prove nothing the harness keeps or prints leaks it.
        self.echo_auth = echo_auth
        self.store: dict[str, dict[str, Any]] = {}  # finetune id -> {id, name, model, description, files}
        self.apply_lora = True  # False simulates an adapter that uploads but is silently not applied
        # A Hugging Face tokenizer makes prompt_tokens real, counted the way servers count them: a raw prompt
        # is encoded with special tokens on (a Llama 3 tokenizer adds <|begin_of_text|>), chat messages
        # through the chat template with the request's chat_template_kwargs.
        self.tokenizer = tokenizer
        self.finish_reason = "stop"  # what OpenAI routes report; "length" simulates a reply cut off at max_tokens
        self.requests: list[FakeRequest] = []
        self.in_flight = self.max_in_flight = 0
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.route("POST", r"/client/v4/accounts/(?P<account>[^/]+)/ai/run/(?P<model>.+)", self._run)
        self.route("GET", r"/client/v4/accounts/(?P<account>[^/]+)/ai/models/search", self._models)
        self.route("GET", r"/client/v4/accounts/(?P<account>[^/]+)/ai/finetunes", self._list_finetunes)
        self.route("POST", r"/client/v4/accounts/(?P<account>[^/]+)/ai/finetunes", self._create_finetune)
        self.route("POST", r"/client/v4/accounts/(?P<account>[^/]+)/ai/finetunes/(?P<id>[^/]+)/finetune-assets",
                   self._upload_asset)
        self.route("POST", r"/v1/chat/completions", self._openai)
        self.route("POST", r"/v1/completions", self._openai)
        self._server: ThreadingHTTPServer | None = None

    # -- set-up ----------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + r"/?$"), handler))

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_base(self) -> str:
        return self.url + "/client/v4"

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    def start(self) -> "FakeCloudflare":
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # with keep-alive, Nagle + delayed ACK adds ~40 ms per reply
            wbufsize = 1 << 16  # headers and body leave in one write

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeCloudflare":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------------
    def _take_fault(self, raw: bytes) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.match is None or fault.match.encode() in raw):
                    fault.times -= 1
                    return fault
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw and "json" in (h.headers.get("Content-Type") or "") else raw
        except ValueError:
            body = None
        path = h.path.split("?")[0]
        req = FakeRequest(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, body, raw)
        with self.lock:
            self.requests.append(req)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._serve(h, req, path, raw)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _serve(self, h: BaseHTTPRequestHandler, req: FakeRequest, path: str, raw: bytes) -> None:
        fault = self._take_fault(raw)
        if fault is not None and fault.kind == "drop":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        if self.delay_s:
            time.sleep(self.delay_s)
        status, headers, payload = self._answer(req, path, fault)
        if fault is not None and fault.kind == "drop_after":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.echo_auth:
            payload = _echo(payload, req.headers.get("authorization", ""))
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _answer(self, req: FakeRequest, path: str, fault: Fault | None) -> tuple[int, dict[str, str], Any]:
        if fault is not None and fault.kind == "429":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            if fault.retry_after_text is not None:
                headers = {"Retry-After": fault.retry_after_text}
            return 429, headers, envelope(None, [{"code": 3040, "message": "Too many requests"}])
        if fault is not None and fault.kind == "500":
            return 500, {"Content-Type": "text/html"}, b"<html><body>502 Bad Gateway</body></html>"
        if fault is not None and fault.kind == "bad_200":
            if fault.body is None:
                return 200, {"Content-Type": "text/html"}, b"<html><body>Please wait...</body></html>"
            return 200, dict(fault.headers), fault.body
        if fault is not None and fault.kind == "cf_error":
            return cf_error(fault.code or 5006)
        for method, pattern, handler in self.routes:
            m = pattern.match(path)
            if m and method == req.method:
                req.params = m.groupdict()
                return handler(req)
        return 404, {}, envelope(None, [{"code": 7003, "message": f"No route for {req.method} {path}"}])

    def check_bearer(self, req: FakeRequest, token: str | None) -> tuple[int, dict[str, str], Any] | None:
        """None when the Authorization header carries `token`; else Cloudflare's 401."""
        got = req.headers.get("authorization", "")
        if token is None or got == f"Bearer {token}":
            return None
        message = "Authentication error" + (f" for '{got}'" if self.echo_token_in_errors else "")
        return cf_error(10000, message)

    def _run(self, req: FakeRequest) -> tuple[int, dict[str, str], Any]:
        denied = self.check_bearer(req, self.token)
        if denied:
            return denied
        if req.params["account"] != self.account_id:
            return cf_error(10000, "account not found for this token")
        model, body = req.params["model"], req.body
        if self.models is not None and model not in self.models:
            return cf_error(5007, f"No such model {model}")
        problem = _run_body_problem(body)
        if problem:
            return cf_error(5006, problem)
        lora = body.get("lora")
        if lora is not None:
            if self.lora_models is not None and model not in self.lora_models:
                return cf_error(5005)
            stored = next((f for f in self.store.values() if lora in (f["id"], f["name"])), None)
            if stored is None and self.finetunes is not None and lora not in self.finetunes:
                return cf_error(3037, f"Finetune {lora} not found")
            if stored is not None and not {"adapter_model.safetensors", "adapter_config.json"} <= set(stored["files"]):
                return cf_error(3039)
            if not self.apply_lora:
                body = {k: v for k, v in body.items() if k != "lora"}
        text, calls = _answer_parts(self.reply(body))
        result: dict[str, Any] = {"response": text}
        if calls is not None:  # Workers AI function calling: arguments as an object
            result["tool_calls"] = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
        if self.usage:
            prompt = self.prompt_tokens(body)
            result["usage"] = {"prompt_tokens": prompt, "completion_tokens": max(1, len(text) // 4),
                               "total_tokens": prompt + max(1, len(text) // 4)}
        return 200, {}, envelope(result)

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        """What the server's tokenizer makes of the request (100 without a tokenizer)."""
        if self.tokenizer is None:
            return 100
        if isinstance(body.get("prompt"), str):
            return len(self.tokenizer(body["prompt"])["input_ids"])
        extra = {"tools": body["tools"]} if body.get("tools") else {}
        ids = self.tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=True,
                                                 **(body.get("chat_template_kwargs") or {}), **extra)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    # -- catalog and finetunes (deploy) ------------------------------------------------------------
    def _models(self, req: FakeRequest) -> tuple[int, dict[str, str], Any]:
        denied = self.check_bearer(req, self.token)
        if denied:
            return denied
        from urllib.parse import parse_qs, urlparse

        search = (parse_qs(urlparse(req.path).query).get("search") or [""])[0].lower()
        names = sorted(self.models or set()) or sorted(self.lora_models or set())
        models = [{"id": f"id-{i}", "name": n, "description": "", "task": {"name": "Text Generation"},
                   "properties": [{"property_id": "lora", "value": "true"}] if n in (self.lora_models or set()) else []}
                  for i, n in enumerate(names)]
        return 200, {}, envelope([m for m in models if search in m["name"].lower()])

    def _list_finetunes(self, req: FakeRequest) -> tuple[int, dict[str, str], Any]:
        denied = self.check_bearer(req, self.token)
        if denied:
            return denied
        return 200, {}, envelope([{k: f[k] for k in ("id", "name", "model", "description")} for f in self.store.values()])

    def _create_finetune(self, req: FakeRequest) -> tuple[int, dict[str, str], Any]:
        denied = self.check_bearer(req, self.token)
        if denied:
            return denied
        body = req.body if isinstance(req.body, dict) else {}
        model, name = body.get("model"), body.get("name")
        if not isinstance(model, str) or not isinstance(name, str) or not name:
            return cf_error(5006, "model and name are required")
        if self.lora_models is not None and model not in self.lora_models:
            return cf_error(5005)
        if any(f["name"] == name for f in self.store.values()):
            return cf_error(3002, f"A finetune named {name} already exists")
        fid = f"ft-{len(self.store) + 1:04d}-{abs(hash(name)) % 10**6:06d}"
        self.store[fid] = {"id": fid, "name": name, "model": model, "description": body.get("description", ""), "files": {}}
        return 200, {}, envelope({"id": fid, "name": name, "model": model, "description": body.get("description", ""),
                                  "created_at": "2026-11-22T00:00:00Z"})

    def _upload_asset(self, req: FakeRequest) -> tuple[int, dict[str, str], Any]:
        denied = self.check_bearer(req, self.token)
        if denied:
            return denied
        finetune = self.store.get(req.params["id"])
        if finetune is None:
            return cf_error(3037, f"Finetune {req.params['id']} not found")
        fields = _multipart(req.headers.get("content-type", ""), req.raw)
        name, content = fields.get("file_name"), fields.get("file")
        if not isinstance(name, bytes) or content is None:
            return cf_error(5006, "file_name and file are required")
        finetune["files"][name.decode()] = content
        return 200, {}, envelope({"success": True})

    def _openai(self, req: FakeRequest) -> tuple[int, dict[str, str], Any]:
        if self.openai_key is not None and req.headers.get("authorization") != f"Bearer {self.openai_key}":
            return 401, {}, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}}
        body = req.body if isinstance(req.body, dict) else {}
        model = body.get("model")
        if self.served_models is not None and model not in self.served_models:
            return 404, {}, {"error": {"message": f"The model `{model}` does not exist.", "type": "NotFoundError"}}
        chat = req.path.startswith("/v1/chat/")
        if chat and not isinstance(body.get("messages"), list) or not chat and not isinstance(body.get("prompt"), str):
            return 400, {}, {"error": {"message": "messages (chat) or prompt (completions) required"}}
        text, calls = _answer_parts(self.reply(body))
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls is not None:  # OpenAI: arguments as a JSON string
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {
                    "name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
                    else json.dumps(c["arguments"])}} for i, c in enumerate(calls)]}
        choice = {"index": 0, "finish_reason": "tool_calls" if calls else self.finish_reason,
                  **({"message": message} if chat else {"text": text})}
        prompt = self.prompt_tokens(body)
        return 200, {}, {"id": "cmpl-1", "object": "chat.completion" if chat else "text_completion", "model": model,
                         "choices": [choice], "usage": {"prompt_tokens": prompt, "completion_tokens": 10,
                                                        "total_tokens": prompt + 10}}


def _answer_parts(answer: Any) -> tuple[str, list[dict[str, Any]] | None]:
    """A `reply` callable's answer: plain text, or {"content"?, "tool_calls": [{"name", "arguments"}]}."""
    if isinstance(answer, dict):
        return answer.get("content") or "", list(answer.get("tool_calls") or []) or None
    return answer, None


def _echo(payload: Any, auth: str) -> Any:
    """The payload with `auth` planted in it: in an HTML page, in an error's message, in a reply's text and
    usage, and in a result that has no id (deploy's create)."""
    if isinstance(payload, bytes):
        return payload.replace(b"</body>", f"<pre>{auth}</pre></body>".encode())
    if not isinstance(payload, dict):
        return payload
    payload = json.loads(json.dumps(payload))
    for error in payload.get("errors") or []:
        if isinstance(error, dict):
            error["message"] = f"{error.get('message', '')} (request had {auth})"
    result = payload.get("result")
    if isinstance(result, dict) and isinstance(result.get("message"), str):
        result["message"] += f" for {auth}"
    if isinstance(result, dict) and isinstance(result.get("response"), str):
        result["response"] += f"\n(served for {auth})"
        if isinstance(result.get("usage"), dict):
            result["usage"]["note"] = auth
    for choice in payload.get("choices") or []:
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] += f"\n(served for {auth})"
        if isinstance(choice.get("text"), str):
            choice["text"] += f"\n(served for {auth})"
    if isinstance(payload.get("error"), dict):
        payload["error"]["message"] = f"{payload['error'].get('message', '')} (request had {auth})"
    return payload


def _run_body_problem(body: Any) -> str | None:
    """Why a Workers AI text-generation body is malformed, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    has_messages, has_prompt = "messages" in body, "prompt" in body
    if has_messages == has_prompt:
        return "exactly one of 'messages' or 'prompt' is required"
    if has_messages:
        msgs = body["messages"]
        if not isinstance(msgs, list) or not msgs:
            return "'messages' must be a non-empty list"
        for m in msgs:
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                return f"bad message {m!r}"
    elif not isinstance(body["prompt"], str) or not body["prompt"]:
        return "'prompt' must be a non-empty string"
    for key, kind in (("max_tokens", int), ("temperature", (int, float)), ("seed", int), ("lora", str), ("raw", bool)):
        if key in body and not isinstance(body[key], kind):
            return f"'{key}' has the wrong type"
    return None


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    out: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            out[str(name)] = part.get_payload(decode=True) or b""
    return out
