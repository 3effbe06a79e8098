"""mcpd's inference endpoints with the official OpenAI and Anthropic SDKs as clients, against
stub providers: keys resolved on the server (plaintext and OpenBao), streaming, translation,
tiers, errors, key changes, usage, warmup and mcpctl infer. The last test scans everything
mcpd printed (at trace level) for every key the tests stored."""

import itertools
import json
import os
import pty
import select
import signal
import subprocess
import threading
import time

import anthropic
import openai
import pytest

from conftest import BIN, KEYS, Mcpd, new_key, request

names = (f"t{i}" for i in itertools.count())
# Every answer body the tests saw: none may hold a key.
ANSWERS = []


def oai(mcpd, token=None):
    return openai.OpenAI(api_key=token or mcpd.token, base_url=mcpd.url + "/openai/v1", max_retries=0, timeout=30)


def ant(mcpd, token=None):
    return anthropic.Anthropic(api_key=token or mcpd.token, base_url=mcpd.url + "/anthropic", max_retries=0, timeout=30)


def ask(mcpd, model, token=None, **kw):
    raw = oai(mcpd, token).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], **kw)
    ANSWERS.append(raw.text if hasattr(raw, "text") else raw.http_response.text)
    return raw


@pytest.mark.parametrize("backend", ["plaintext", "openbao"])
def test_every_type_sends_exactly_its_stored_key_in_its_own_header(mcpd, bao, stub, backend):
    for provider in ["openai", "deepseek", "vllm", "ollama", "anthropic"]:
        name, key = next(names), new_key()
        mcpd.secret(name, key, backend="bao" if backend == "openbao" else None)
        mcpd.llm(name, provider, stub.url, secret=name)
        raw = ask(mcpd, name)
        answer = raw.parse()
        assert answer.choices[0].message.content == "Hello from stub", provider
        assert raw.headers["x-mcpd-llm"] == name
        request = stub.last
        assert request["body"]["model"] == "upstream-model", "the Llm's model replaces its name"
        if provider == "anthropic":
            assert request["path"] == "/v1/messages"
            assert request["headers"]["x-api-key"] == key
            assert request["headers"]["anthropic-version"] == "2023-06-01"
            assert "authorization" not in request["headers"]
            message = ant(mcpd).messages.create(model=name, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
            assert message.content[0].text == "Hello from stub"
            assert stub.last["headers"]["x-api-key"] == key
        else:
            assert request["path"] == "/v1/chat/completions"
            assert request["headers"]["authorization"] == f"Bearer {key}"
            assert "x-api-key" not in request["headers"]
        assert mcpd.token not in json.dumps(stub.requests), "the client's mcpd token never goes upstream"
    keyless = next(names)
    mcpd.llm(keyless, "ollama", stub.url)
    ask(mcpd, keyless)
    assert "authorization" not in stub.last["headers"] and "x-api-key" not in stub.last["headers"]


def test_a_stream_arrives_as_the_provider_sends_it(mcpd, stub):
    for provider in ["openai", "anthropic"]:
        name = next(names)
        mcpd.secret(name, new_key())
        mcpd.llm(name, provider, stub.url, secret=name)
        stub.reset("gate")
        text = ""
        for chunk in oai(mcpd).chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                if not text:
                    assert not stub.sent_last.is_set(), "the first chunk came before the stub sent its last"
                    stub.release.set()
                text += chunk.choices[0].delta.content
        assert text == "Hello from stub", provider
    # The Anthropic SDK on the Anthropic surface, streamed.
    stub.reset("gate")
    seen = []
    with ant(mcpd).messages.stream(model=name, max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        for text in stream.text_stream:
            if not seen:
                assert not stub.sent_last.is_set()
                stub.release.set()
            seen.append(text)
        final = stream.get_final_message()
    assert "".join(seen) == "Hello from stub" and final.usage.output_tokens == 3


def test_a_client_going_away_drops_the_provider_request(mcpd, stub):
    name = next(names)
    mcpd.llm(name, "ollama", stub.url)
    stub.reset("slow")
    stream = oai(mcpd).chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    assert stub.disconnected.wait(10), f"mcpd kept reading from the provider ({stub.chunks_sent} chunks sent)"
    assert stub.chunks_sent < 150


def test_the_openai_sdk_talks_to_an_anthropic_llm(mcpd, stub):
    name = next(names)
    mcpd.secret(name, new_key())
    mcpd.llm(name, "anthropic", stub.url, secret=name)
    answer = ask(mcpd, name, max_tokens=20).parse()
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == "Hello from stub"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (11, 3, 14)
    sent = stub.last["body"]
    assert sent["max_tokens"] == 20 and sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    chunks = list(oai(mcpd).chat.completions.create(
        model=name, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        stream=True, stream_options={"include_usage": True}))
    assert stub.last["body"]["system"] == "Be brief."
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from stub"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.prompt_tokens == 11 and chunks[-1].usage.completion_tokens == 3


def test_a_tier_fails_over_to_the_next_llm(mcpd, stub, stub2):
    first, second = next(names), next(names)
    mcpd.llm(first, "ollama", stub.url, tier="heavy")
    mcpd.llm(second, "ollama", stub2.url, tier="heavy")
    token = mcpd.user(f"u-{first}", rules=[{"operations": ["run:infer"], "names": [first, second]}])
    stub.reset("status:503")
    raw = ask(mcpd, "tier:heavy", token=token)
    assert raw.headers["x-mcpd-llm"] == second
    assert raw.parse().choices[0].message.content == "Hello from second"
    assert len(stub.requests) == 1 and len(stub2.requests) == 1
    # Streamed too, and a 429 fails over like a 503.
    stub.reset("status:429")
    chunks = list(oai(mcpd, token).chat.completions.create(model="tier:heavy", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from second"
    # When every Llm of the tier fails, the last failure is the answer.
    stub.reset("status:503")
    stub2.reset("status:503")
    with pytest.raises(openai.InternalServerError) as failed:
        ask(mcpd, "tier:heavy", token=token)
    assert failed.value.status_code == 503
    models = {m.id for m in oai(mcpd, token).models.list()}
    assert models == {first, second, "tier:heavy"}, "the Llms (and tiers) the caller may use"


def test_errors_say_what_went_wrong(mcpd, stub):
    name, other = next(names), next(names)
    mcpd.llm(name, "ollama", stub.url, extra={"timeoutSeconds": "1"})
    mcpd.llm(other, "ollama", stub.url)
    # 401: no token, or a bad one.
    r = request("POST", mcpd.url + "/openai/v1/chat/completions", {"model": name, "messages": []})
    assert r.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        ask(mcpd, name, token="not-a-token")
    with pytest.raises(anthropic.AuthenticationError):
        ant(mcpd, "not-a-token").messages.create(model=name, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    # 403: no run:infer at all, or not on this Llm.
    viewer = mcpd.user(f"viewer-{name}", role="viewer")
    with pytest.raises(openai.PermissionDeniedError):
        ask(mcpd, name, token=viewer)
    scoped = mcpd.user(f"scoped-{name}", rules=[{"operations": ["run:infer"], "names": [name]}])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        ask(mcpd, other, token=scoped)
    assert "run:infer" in denied.value.message
    assert ask(mcpd, name, token=scoped).parse().choices[0].message.content == "Hello from stub"
    # 404: no such Llm; 400: an Llm mcpd cannot call, or the wrong surface for it.
    with pytest.raises(openai.NotFoundError):
        ask(mcpd, "no-such-llm")
    gemini = next(names)
    mcpd.llm(gemini, "gemini-cli", "")
    with pytest.raises(openai.BadRequestError) as bad:
        ask(mcpd, gemini)
    assert "runs on the client" in bad.value.message
    with pytest.raises(anthropic.BadRequestError):
        ant(mcpd).messages.create(model=other, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    # The provider's own refusals: 4xx passed on with its message, 429 with Retry-After.
    stub.reset("status:400")
    with pytest.raises(openai.BadRequestError) as bad:
        ask(mcpd, name)
    assert "stub says 400" in bad.value.message
    stub.reset("status:429")
    with pytest.raises(openai.RateLimitError) as limited:
        ask(mcpd, name)
    assert limited.value.response.headers["retry-after"] == "7"
    assert "stub says 429" in limited.value.message
    # A provider that hangs: 504 within the Llm's timeout.
    stub.reset("hang")
    with pytest.raises(openai.APIStatusError) as hung:
        ask(mcpd, name)
    # The stub never answers: a 504 can only be mcpd's own timeout, and it says so.
    assert hung.value.status_code == 504, hung.value
    assert "did not answer within" in hung.value.message, hung.value.message
    # A provider that is down: 502.
    down = next(names)
    mcpd.llm(down, "ollama", "http://127.0.0.1:9")
    with pytest.raises(openai.APIStatusError) as gone:
        ask(mcpd, down)
    assert gone.value.status_code == 502 and "cannot be reached" in gone.value.message
    # Changing where an Llm sends its key needs reveal on that key: an editor may not.
    editor = mcpd.user(f"editor-{name}", role="editor")
    secret = next(names)
    mcpd.secret(secret, new_key())
    r = mcpd.call("POST", "/api/v1/llms", {"name": next(names), "type": "openai", "model": "m", "tier": "fast", "url": stub.url,
                                          "apiKeyRef": {"name": secret, "key": "API_KEY"}}, token=editor)
    assert r.status_code == 403, r.text


def test_a_secret_update_or_migration_takes_effect_on_the_next_call(mcpd, bao, stub):
    name, first = next(names), new_key()
    mcpd.secret(name, first)
    mcpd.llm(name, "openai", stub.url, secret=name)
    ask(mcpd, name)
    assert stub.last["headers"]["authorization"] == f"Bearer {first}"
    second = new_key()
    mcpd.ok("PUT", f"/api/v1/secrets/{name}", {"data": {"API_KEY": second}})
    ask(mcpd, name)
    assert stub.last["headers"]["authorization"] == f"Bearer {second}"
    run = mcpd.call("POST", "/api/v1/secrets/migrate", {"from": "default", "to": "bao", "names": [name]})
    assert run.status_code == 200 and '"status":"completed"' in run.text, run.text
    deadline = time.time() + 30
    while mcpd.ok("GET", f"/api/v1/secrets/{name}")["backend"] != "bao":
        assert time.time() < deadline, "the migration did not finish"
        time.sleep(0.2)
    path = mcpd.ok("GET", f"/api/v1/secrets/{name}")["externalRef"].removeprefix("secret/data/")
    assert bao.read(path) == {"API_KEY": second}
    # Removed behind mcpd's back: the next call reads the new location, so it fails, clearly.
    bao.delete(path)
    with pytest.raises(openai.APIStatusError) as gone:
        ask(mcpd, name)
    assert gone.value.status_code == 502 and "missing from secretbackend" in gone.value.message
    bao.undelete(path)
    ask(mcpd, name)
    assert stub.last["headers"]["authorization"] == f"Bearer {second}"
    third = new_key()
    mcpd.ok("PUT", f"/api/v1/secrets/{name}", {"data": {"API_KEY": third}})
    assert bao.read(path) == {"API_KEY": third}
    ask(mcpd, name)
    assert stub.last["headers"]["authorization"] == f"Bearer {third}"


def test_usage_is_counted_per_user_and_llm(mcpd, stub):
    name = next(names)
    mcpd.llm(name, "ollama", stub.url)
    token = mcpd.user(f"u-{name}", rules=[{"operations": ["run:infer"], "names": [name]}])
    ask(mcpd, name, token=token)
    list(oai(mcpd, token).chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], stream=True))
    stub.reset("status:400")
    with pytest.raises(openai.BadRequestError):
        ask(mcpd, name, token=token)
    rows = mcpd.ok("GET", f"/api/v1/usage?llm={name}")["items"]
    assert rows == [{"user": f"u-{name}", "llm": name, "requests": 3, "errors": 1, "inputTokens": 22, "outputTokens": 6}]
    own = mcpd.call("GET", "/api/v1/usage", token=token).json()["items"]
    assert own == rows, "one's own usage needs no permission"
    r = mcpd.call("GET", "/api/v1/usage?user=admin", token=token)
    assert r.status_code == 403
    assert mcpd.call("GET", "/api/v1/usage?since=yesterday").status_code == 400
    # The same traffic in the Prometheus metrics, per Llm.
    scrape = mcpd.call("GET", "/metrics")
    assert scrape.status_code == 200
    metrics = scrape.text
    assert f'mcpd_inference_requests_total{{llm="{name}",outcome="ok"}} 2' in metrics, metrics
    assert f'mcpd_inference_requests_total{{llm="{name}",outcome="error"}} 1' in metrics
    assert f'mcpd_inference_tokens_total{{llm="{name}",direction="input"}} 22' in metrics
    assert f'mcpd_inference_tokens_total{{llm="{name}",direction="output"}} 6' in metrics
    assert f'mcpd_inference_upstream_seconds_count{{llm="{name}"}} 3' in metrics
    assert mcpd.call("GET", "/metrics", token=token).status_code == 403, "run:infer is not view:metrics"


def test_sigterm_ends_a_stream_in_flight_with_an_error_event_and_mcpd_exits(tmp, stub):
    directory = os.path.join(tmp, "sigterm")
    os.makedirs(directory)
    server = Mcpd(directory, args=("--shutdown-grace-secs", "3"))
    try:
        name = next(names)
        server.llm(name, "ollama", stub.url)
        stub.reset("slow")  # 200 chunks, 50 ms apart: 10 s
        chunks = iter(oai(server).chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], stream=True))
        assert next(chunks).choices[0].delta.role == "assistant"
        assert next(chunks).choices[0].delta.content == "w0 "
        server.process.send_signal(signal.SIGTERM)
        after = 0
        with pytest.raises(openai.APIError) as cut:
            for _ in chunks:
                after += 1
        assert "shutting down" in str(cut.value), cut.value
        # Ended at once, not when the 3 s grace ran out: the stub sends a chunk every 50 ms, so
        # waiting out the grace would have let about 60 through (a slower machine lets fewer).
        assert after < 60, f"{after} chunks came after SIGTERM: the stream waited for the grace period"
        assert server.process.wait(10) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.log.close()


def test_warmup_checks_each_llm_and_get_shows_its_status(mcpd, stub):
    hosted, local = next(names), next(names)
    key = new_key()
    mcpd.secret(hosted, key)
    mcpd.llm(hosted, "openai", stub.url, secret=hosted)
    mcpd.llm(local, "ollama", stub.url, model="llama3")
    answer = mcpd.ok("POST", f"/api/v1/llms/{hosted}/warmup")
    assert answer["health"]["status"] == "Ready", answer
    assert stub.last["path"] == "/v1/models" and stub.last["headers"]["authorization"] == f"Bearer {key}"
    assert mcpd.ok("POST", f"/api/v1/llms/{local}/warmup")["health"]["status"] == "Ready"
    assert stub.last["path"] == "/api/generate" and stub.last["body"]["model"] == "llama3"
    stub.reset("status:401")
    assert mcpd.ok("POST", f"/api/v1/llms/{hosted}/warmup")["health"]["status"] == "KeyRejected"
    table = mcpctl(mcpd, "get", "llms", "-o", "wide").stdout
    rows = {line.split()[0]: line for line in table.splitlines()}
    assert "STATUS" in table.splitlines()[0]
    assert " KeyRejected " in rows[hosted] and " Ready " in rows[local], table
    viewer = mcpd.user(f"viewer-{hosted}", role="viewer")
    assert mcpd.call("POST", f"/api/v1/llms/{hosted}/warmup", token=viewer).status_code == 403


def mcpctl(mcpd, *args, **kw):
    env = dict(os.environ, MCPCTL_SERVER=mcpd.url, MCPCTL_TOKEN=mcpd.token)
    return subprocess.run([os.path.join(BIN, "mcpctl"), *args], capture_output=True, text=True, env=env, timeout=60, **kw)


def test_mcpctl_infer_streams_to_a_terminal_and_to_a_pipe(mcpd, stub):
    name = next(names)
    mcpd.secret(name, new_key())
    mcpd.llm(name, "anthropic", stub.url, secret=name)
    # A terminal: the first words show before the provider sent its last.
    stub.reset("gate")
    leader, follower = pty.openpty()
    env = dict(os.environ, MCPCTL_SERVER=mcpd.url, MCPCTL_TOKEN=mcpd.token)
    process = subprocess.Popen([os.path.join(BIN, "mcpctl"), "infer", name, "Say hello"], stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    deadline = time.time() + 20
    while b"Hello" not in seen and time.time() < deadline:
        if select.select([leader], [], [], 0.5)[0]:
            seen += os.read(leader, 1024)
    assert b"Hello" in seen and not stub.sent_last.is_set(), seen
    stub.release.set()
    while process.poll() is None or select.select([leader], [], [], 0.2)[0]:
        try:
            chunk = os.read(leader, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(20) == 0
    assert b"Hello from stub" in seen
    # A pipe: the whole answer; from stdin, with a system prompt.
    stub.reset()
    piped = mcpctl(mcpd, "infer", name, "--system", "Be brief.", "--max-tokens", "30", input="Say hello\n")
    assert piped.returncode == 0 and piped.stdout == "Hello from stub\n", piped
    assert stub.last["body"]["system"] == "Be brief." and stub.last["body"]["max_tokens"] == 30
    assert stub.last["body"]["messages"][0]["content"][0]["text"] == "Say hello\n"
    whole = mcpctl(mcpd, "infer", name, "hi", "-o", "json")
    assert json.loads(whole.stdout)["choices"][0]["message"]["content"] == "Hello from stub", whole
    ANSWERS.append(whole.stdout)
    assert mcpctl(mcpd, "infer", "no-such-llm", "hi").returncode != 0
    assert mcpctl(mcpd, "auth", "can-i", "run:infer", f"llm/{name}").stdout == "yes\n"


def test_a_provider_echoing_the_key_does_not_pass_it_on(mcpd, stub):
    for provider in ["openai", "anthropic"]:
        name, key = next(names), new_key()
        mcpd.secret(name, key)
        mcpd.llm(name, provider, stub.url, secret=name)
        for status, error in [(400, openai.BadRequestError), (401, openai.InternalServerError)]:
            stub.reset(f"echo:{status}")
            with pytest.raises(error) as refused:
                ask(mcpd, name)
            text = refused.value.response.text
            ANSWERS.append(text)
            assert key not in text and "bad key [redacted]" in text, text
        warmed = mcpd.ok("POST", f"/api/v1/llms/{name}/warmup")["health"]
        assert warmed["status"] == "KeyRejected" and key not in warmed["message"], warmed
        assert "[redacted]" in warmed["message"]
        described = mcpd.ok("GET", f"/api/v1/llms/{name}")
        assert key not in json.dumps(described)


def test_zz_no_key_in_mcpd_output_or_any_answer(mcpd):
    """Last (by name): everything mcpd printed at trace level, and every answer, without a key."""
    output = mcpd.output()
    assert "TRACE" in output, "mcpd logged at trace level"
    assert len(KEYS) > 10
    for key in KEYS:
        assert key not in output, "a key appeared in mcpd's output"
        for answer in ANSWERS:
            assert key not in answer


def test_serve_warmup_warms_the_llms_at_start(tmp_path, stub):
    """`mcpd serve --warmup fast` calls the fast tier's providers by itself after a restart."""
    from conftest import Mcpd
    first = Mcpd(str(tmp_path))
    key = new_key()
    first.secret("k", key)
    first.llm("fast-one", "openai", stub.url, secret="k", tier="fast")
    first.llm("heavy-one", "ollama", stub.url, tier="heavy")
    first.stop()
    stub.reset()
    again = Mcpd(str(tmp_path), ["--warmup", "fast"], token=first.token)
    try:
        deadline = time.time() + 20
        while not stub.requests and time.time() < deadline:
            time.sleep(0.1)
        assert [r["path"] for r in stub.requests] == ["/v1/models"], "the fast Llm only"
        assert stub.last["headers"]["authorization"] == f"Bearer {key}"
        health = again.ok("GET", "/api/v1/llms/fast-one")["health"]
        assert health["status"] == "Ready", health
        assert "health" not in again.ok("GET", "/api/v1/llms/heavy-one")
        assert key not in again.output()
    finally:
        again.stop()
