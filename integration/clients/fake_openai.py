#!/usr/bin/env python3
"""A fake OpenAI-compatible HTTP server for glassbox's OTLP tests (stdlib only).

    python3 fake_openai.py [--host 127.0.0.1] [--port 0] [--seed 7] [--port-file F]

Serves POST /v1/chat/completions, plain and `stream: true` (SSE). Every answer is a pure
function of (seed, model, last user message): the same call always gets the same outcome, so
a client can compute its ground truth from what it received. Outcomes: a normal answer
(finish_reason "stop"), a truncated one (finish_reason "length"), HTTP 429 or HTTP 500.
`usage` carries prompt_tokens_details.cached_tokens and completion_tokens_details.
reasoning_tokens (reasoning only for models whose name starts with "o"). A streamed answer
sends usage in a last chunk with empty `choices` when the request asks for it
(stream_options.include_usage), as OpenAI does.

A user message may force an outcome with a tag: "[force:ok]", "[force:length]",
"[force:429]", "[force:500]". Binds 127.0.0.1 only by default.
"""
import argparse
import hashlib
import json
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ("the quick brown fox jumps over a lazy dog while glassbox counts every token "
         "of every span it hears from the collector").split()


def outcome_for(seed, model, content):
    """Deterministic (outcome, usage numbers, answer words) for one request."""
    h = hashlib.sha256(f"{seed}|{model}|{content}".encode()).digest()
    rng = random.Random(int.from_bytes(h[:8], "big"))
    forced = None
    for tag in ("ok", "length", "429", "500"):
        if f"[force:{tag}]" in content:
            forced = tag
    roll = rng.random()
    outcome = forced or ("429" if roll < 0.10 else "500" if roll < 0.18 else
                         "length" if roll < 0.33 else "ok")
    prompt = rng.randint(20, 400)
    # OpenAI caches in 16-token steps (beyond 1024 in reality; smaller here to keep spans small)
    cached = rng.choice([0, max(16, (prompt // 2) // 16 * 16), max(16, (prompt // 3) // 16 * 16), 16])
    cached = min(cached, prompt)
    n_words = rng.randint(4, 12) if outcome != "length" else 16
    completion_visible = n_words * 2
    reasoning = rng.randint(16, 128) if model.startswith("o") else 0
    completion = completion_visible + reasoning
    words = [rng.choice(WORDS) for _ in range(n_words)]
    return outcome, prompt, cached, completion, reasoning, words


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-openai/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        if self.server.verbose:
            sys.stderr.write("[fake-openai] " + (fmt % args) + "\n")

    def _json(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/health", "/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in
                                                         ("gpt-4o-mini", "gpt-4o", "o3-mini")]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, {"error": {"message": f"no route {self.path}",
                                              "type": "invalid_request_error"}})
        try:
            req = json.loads(raw)
        except ValueError:
            return self._json(400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
        model = req.get("model", "gpt-4o-mini")
        msgs = req.get("messages") or []
        content = ""
        for m in reversed(msgs):
            if m.get("role") == "user":
                c = m.get("content")
                content = c if isinstance(c, str) else json.dumps(c)
                break
        outcome, prompt, cached, completion, reasoning, words = outcome_for(
            self.server.seed, model, content)
        self.server.count += 1
        if outcome == "429":
            return self._json(429, {"error": {"message": "Rate limit reached (fake)",
                                              "type": "rate_limit_exceeded", "code": "rate_limit_exceeded"}},
                              headers=(("Retry-After", "0"),))
        if outcome == "500":
            return self._json(500, {"error": {"message": "The server had an error (fake)",
                                              "type": "server_error"}})
        finish = "length" if outcome == "length" else "stop"
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        }
        cid = "chatcmpl-" + hashlib.sha1(f"{self.server.seed}|{model}|{content}".encode()).hexdigest()[:24]
        created = 1764720000
        if not req.get("stream"):
            return self._json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                             "message": {"role": "assistant", "content": " ".join(words),
                                         "refusal": None}}],
                "usage": usage,
            })
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def chunk(delta, fin=None, with_usage=None, choices=True):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": model, "system_fingerprint": "fp_fake",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": fin,
                                "logprobs": None}] if choices else []}
            if include_usage:
                obj["usage"] = with_usage
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        time.sleep(self.server.delay)  # time to first token
        chunk({"role": "assistant", "content": "", "refusal": None})
        for i, w in enumerate(words):
            chunk({"content": (" " if i else "") + w})
            time.sleep(self.server.delay / 4)
        chunk({}, fin=finish)
        if include_usage:
            chunk(None, with_usage=usage, choices=False)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--delay", type=float, default=0.02, help="seconds before the first chunk")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.seed, srv.delay, srv.verbose, srv.count = a.seed, a.delay, a.verbose, 0
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(a.port_file + ".tmp", a.port_file)
    sys.stderr.write(f"[fake-openai] listening on http://{a.host}:{port} seed={a.seed}\n")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
