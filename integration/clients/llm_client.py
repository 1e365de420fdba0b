#!/usr/bin/env python3
"""A real OpenAI-SDK app, instrumented by ONE real OpenTelemetry library, for glassbox's tests.

    python llm_client.py --instrumentation openllmetry|openinference \
        --otlp-endpoint http://127.0.0.1:4318 --openai-base-url http://127.0.0.1:PORT/v1 \
        --calls 12 --seed 7 --truth out.truth.json [--flush-every 4]

Makes N chat completions through the official `openai` SDK against a (fake) OpenAI-compatible
server: a mix of plain and streamed calls, several models, some 429/500 errors and some
truncations (finish_reason "length"). Spans are made ONLY by the chosen instrumentation
library and exported with the OTel SDK's OTLP/HTTP (protobuf) exporter to a Collector.

The ground truth written to --truth is computed from what the SDK returned (usage, finish
reasons, exceptions), never from the spans. A read-only span processor notes the trace/span
id of each span the library ended while a call ran, so a captured Kafka record can be matched
to the calls it holds; it writes no span and changes none.
"""
import argparse
import json
import sys
import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini")
# With the default --mix, call i forces this outcome on the fake server, so even a few calls
# cover every case (the fake server honours the tag; the client still reads the real result).
PATTERN = ("ok", "ok", "length", "429", "ok", "500", "length", "length", "ok")


class CallTagger(SpanProcessor):
    """Read-only: remembers which spans ended while call `current` ran."""

    def __init__(self):
        self.current = None
        self.spans = {}

    def on_end(self, span):
        ctx = span.get_span_context()
        self.spans.setdefault(self.current, []).append({
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "name": span.name,
        })


def instrument(which, tp):
    if which == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=tp)
        import importlib.metadata as md
        return {"library": "opentelemetry-instrumentation-openai",
                "version": md.version("opentelemetry-instrumentation-openai")}
    if which == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=tp)
        import importlib.metadata as md
        return {"library": "openinference-instrumentation-openai",
                "version": md.version("openinference-instrumentation-openai")}
    raise SystemExit(f"unknown instrumentation {which!r}")


def empty_model_truth():
    return {"requests": 0, "errors": 0, "truncations": 0, "input_tokens": 0, "output_tokens": 0,
            "cached_tokens": 0, "reasoning_tokens": 0, "streamed": 0, "streamed_ok": 0}


def summarize(calls):
    per = {}
    for c in calls:
        t = per.setdefault(c["model"], empty_model_truth())
        t["requests"] += 1
        t["errors"] += 1 if c["error"] else 0
        t["truncations"] += 1 if c["finish_reason"] == "length" else 0
        t["streamed"] += 1 if c["stream"] else 0
        t["streamed_ok"] += 1 if c["stream"] and not c["error"] else 0
        for k in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
            t[k] += c[k]
    return dict(sorted(per.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instrumentation", required=True, choices=("openllmetry", "openinference"))
    ap.add_argument("--otlp-endpoint", default="http://127.0.0.1:4318",
                    help="Collector OTLP/HTTP base URL (…/v1/traces is appended)")
    ap.add_argument("--openai-base-url", required=True, help="e.g. http://127.0.0.1:PORT/v1")
    ap.add_argument("--calls", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mix", choices=("pattern", "server"), default="pattern",
                    help="pattern: force a fixed outcome cycle; server: let the seed decide")
    ap.add_argument("--flush-every", type=int, default=0,
                    help="force_flush the span processor after every K calls (0: at the end)")
    ap.add_argument("--service-name", default=None)
    ap.add_argument("--truth", required=True, help="write the ground truth JSON here")
    a = ap.parse_args()

    service = a.service_name or f"glassbox-pyclient-{a.instrumentation}"
    tp = TracerProvider(resource=Resource.create({
        "service.name": service,
        "service.version": "0.1.0",
        "deployment.environment": "test",
        "glassbox.test.seed": a.seed,
    }))
    tagger = CallTagger()
    tp.add_span_processor(tagger)
    bsp = BatchSpanProcessor(OTLPSpanExporter(endpoint=a.otlp_endpoint.rstrip("/") + "/v1/traces",
                                              timeout=10))
    tp.add_span_processor(bsp)
    lib = instrument(a.instrumentation, tp)

    import openai  # imported after instrumenting, as an app would with auto-instrumentation
    client = openai.OpenAI(base_url=a.openai_base_url, api_key="sk-fake-glassbox",
                           max_retries=0, timeout=15)

    calls = []
    for i in range(a.calls):
        # every model gets plain and streamed calls: i%3==0 plain, else streamed
        model = MODELS[(i + i // 3) % len(MODELS)]
        stream = (i % 3) != 0
        tag = f" [force:{PATTERN[i % len(PATTERN)]}]" if a.mix == "pattern" else ""
        content = f"call {i} seed {a.seed}: say something about glassbox{tag}"
        c = {"i": i, "model": model, "stream": stream, "error": None, "http_status": 200,
             "finish_reason": None, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
             "reasoning_tokens": 0, "content_chars": 0}
        tagger.current = i
        t0 = time.time()
        try:
            kw = dict(model=model, messages=[
                {"role": "system", "content": "You are a terse test assistant."},
                {"role": "user", "content": content}], max_tokens=64, temperature=0.2)
            if stream:
                usage, text = None, []
                for ch in client.chat.completions.create(
                        stream=True, stream_options={"include_usage": True}, **kw):
                    if ch.usage is not None:
                        usage = ch.usage
                    for choice in ch.choices:
                        if choice.delta and choice.delta.content:
                            text.append(choice.delta.content)
                        if choice.finish_reason:
                            c["finish_reason"] = choice.finish_reason
                c["content_chars"] = len("".join(text))
            else:
                r = client.chat.completions.create(**kw)
                usage = r.usage
                c["finish_reason"] = r.choices[0].finish_reason
                c["content_chars"] = len(r.choices[0].message.content or "")
            if usage is not None:
                c["input_tokens"] = usage.prompt_tokens
                c["output_tokens"] = usage.completion_tokens
                ptd = getattr(usage, "prompt_tokens_details", None)
                ctd = getattr(usage, "completion_tokens_details", None)
                c["cached_tokens"] = (ptd.cached_tokens or 0) if ptd else 0
                c["reasoning_tokens"] = (ctd.reasoning_tokens or 0) if ctd else 0
        except openai.APIStatusError as e:
            c["error"] = type(e).__name__
            c["http_status"] = e.status_code
        c["wall_s"] = round(time.time() - t0, 4)
        tagger.current = None
        calls.append(c)
        if a.flush_every and (i + 1) % a.flush_every == 0:
            tp.force_flush()

    tp.force_flush()
    tp.shutdown()
    for c in calls:
        c["spans"] = tagger.spans.get(c["i"], [])
    stray = tagger.spans.get(None, [])
    truth = {"instrumentation": a.instrumentation, **lib, "service.name": service,
             "seed": a.seed, "calls": calls, "per_model": summarize(calls),
             "spans_outside_calls": stray}
    with open(a.truth, "w") as f:
        json.dump(truth, f, indent=1)
    n_spans = sum(len(c["spans"]) for c in calls)
    print(f"[llm_client] {a.instrumentation}: {len(calls)} calls, {n_spans} spans, "
          f"truth -> {a.truth}", file=sys.stderr)


if __name__ == "__main__":
    main()
