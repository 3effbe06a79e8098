"""A stub LLM provider speaking OpenAI's Chat Completions and Anthropic's Messages wire formats,
for mcpd's inference tests (no real provider is reachable from the test machines).

Every request is recorded (path, headers, body). What the next answers look like is set per
stub: `behaviour` is one of
  "ok"          answer (streamed when asked): the text "Hello from <name>" in three chunks;
  "status:N"    answer HTTP N with a provider-shaped error (429 and 503 carry Retry-After: 7);
  "echo:N"      answer HTTP N with an error quoting the key it was sent (a careless provider);
  "hang"        accept the request and never answer;
  "gate"        stream the first chunk, then wait for `release` before the rest;
  "slow"        stream 200 chunks 50 ms apart (to see a client go away).

Run alone (`python3 stub.py PORT [NAME]`) it serves "ok" forever: the README walkthrough's
Ollama stand-in.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stub:
    def __init__(self, name="stub", port=0):
        self.name = name
        self.behaviour = "ok"
        self.requests = []
        self.release = threading.Event()
        self.sent_last = threading.Event()
        self.disconnected = threading.Event()
        self.chunks_sent = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.record(self, None)
                if stub.behaviour.startswith("echo:"):
                    self.json(int(stub.behaviour[5:]), {"error": {"message": f"bad key {stub.sent_key(self)}"}})
                elif stub.behaviour.startswith("status:"):
                    status = int(stub.behaviour.split(":")[1])
                    self.json(status, {"error": {"message": f"{stub.name} says {status}"}})
                elif self.path.endswith("/models"):
                    self.json(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
                else:
                    self.json(404, {"error": {"message": "no such route"}})

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.record(self, body)
                stub.answer(self, body)

            def json(self, status, body, extra=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def reset(self, behaviour="ok"):
        self.behaviour = behaviour
        self.requests = []
        self.release.clear()
        self.sent_last.clear()
        self.disconnected.clear()
        self.chunks_sent = 0

    def record(self, handler, body):
        self.requests.append({"path": handler.path, "headers": {k.lower(): v for k, v in handler.headers.items()}, "body": body})

    @staticmethod
    def sent_key(handler):
        auth = handler.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") or handler.headers.get("x-api-key", "")

    @property
    def last(self):
        return self.requests[-1]

    def answer(self, h, body):
        behaviour = self.behaviour
        anthropic = h.path.endswith("/messages")
        if h.path.endswith("/api/generate"):
            return h.json(200, {"model": body.get("model"), "done": True})
        if behaviour.startswith("echo:"):
            return h.json(int(behaviour[5:]), {"error": {"type": "invalid_request_error", "message": f"bad key {self.sent_key(h)}"}})
        if behaviour == "hang":
            time.sleep(30)
            return
        if behaviour.startswith("status:"):
            status = int(behaviour.split(":")[1])
            message = f"{self.name} says {status}"
            error = ({"type": "error", "error": {"type": "rate_limit_error" if status == 429 else "api_error", "message": message}}
                     if anthropic else {"error": {"message": message, "type": "server_error", "code": None}})
            extra = {"retry-after": "7"} if status in (429, 503) else {}
            return h.json(status, error, extra)
        words = ["Hello ", "from ", self.name]
        if behaviour == "slow":
            words = [f"w{i} " for i in range(200)]
        model = body.get("model")
        if not body.get("stream"):
            text = "".join(words)
            if anthropic:
                return h.json(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                    "usage": {"input_tokens": 11, "output_tokens": 3}})
            return h.json(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}})
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("connection", "close")
        h.end_headers()
        events = self.anthropic_events(model, words) if anthropic else self.openai_events(model, words, body)
        try:
            for i, event in enumerate(events):
                if i == len(events) - 1:
                    self.sent_last.set()
                h.wfile.write(event.encode())
                h.wfile.flush()
                self.chunks_sent += 1
                # After the first piece of text: the role chunk, or message_start and the block start.
                if behaviour == "gate" and i == (2 if anthropic else 1):
                    self.release.wait(20)
                if behaviour == "slow":
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            self.disconnected.set()
        h.close_connection = True

    @staticmethod
    def openai_events(model, words, body):
        def chunk(delta, finish=None):
            return "data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                                          "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": w}) for w in words]
        events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append("data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                                                 "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}) + "\n\n")
        events.append("data: [DONE]\n\n")
        return events

    @staticmethod
    def anthropic_events(model, words):
        def event(name, data):
            return f"event: {name}\ndata: {json.dumps(data)}\n\n"
        events = [event("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                  "model": model, "content": [], "stop_reason": None, "usage": {"input_tokens": 11, "output_tokens": 1}}}),
                  event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
        events += [event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}) for w in words]
        events += [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                   event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 3}}),
                   event("message_stop", {"type": "message_stop"})]
        return events


if __name__ == "__main__":
    stub = Stub(sys.argv[2] if len(sys.argv) > 2 else "stub", int(sys.argv[1]))
    print(f"stub listening on {stub.url}", flush=True)
    threading.Event().wait()
