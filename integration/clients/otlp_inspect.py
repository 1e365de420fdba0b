#!/usr/bin/env python3
"""Prints what a captured OTLP traces record holds: resource, scope, span name/kind/status,
attributes (with their OTLP value type) and events — to read attribute names off real payloads.

    python otlp_inspect.py FILE.bin|FILE.json [...] [--values]     (decodes proto with
                                                                    opentelemetry-proto)
"""
import argparse
import json
import sys

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def load(path):
    raw = open(path, "rb").read()
    if raw[:1] == b"{":
        return json.loads(raw), "otlp_json"
    req = ExportTraceServiceRequest()
    req.ParseFromString(raw)
    return MessageToDict(req), "otlp_proto"


def val(v):
    (t, x), = v.items() if v else (("empty", None),)
    return t, x


def fmt_attrs(attrs, values, indent):
    for kv in attrs or []:
        t, x = val(kv.get("value") or {})
        s = json.dumps(x) if values else ""
        if values and len(s) > 160:
            s = s[:157] + "..."
        print(f"{indent}{kv['key']} : {t} {s}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--values", action="store_true")
    a = ap.parse_args()
    for p in a.files:
        doc, enc = load(p)
        print(f"== {p} ({enc})")
        for rs in doc.get("resourceSpans", []):
            print("  resource:")
            fmt_attrs(rs.get("resource", {}).get("attributes"), a.values, "    ")
            for ss in rs.get("scopeSpans", []):
                sc = ss.get("scope", {})
                print(f"  scope: {sc.get('name')} {sc.get('version')}")
                for sp in ss.get("spans", []):
                    st = sp.get("status", {})
                    print(f"   span {sp['name']!r} kind={sp.get('kind')} status={st}"
                          f" start={sp.get('startTimeUnixNano')} end={sp.get('endTimeUnixNano')}")
                    fmt_attrs(sp.get("attributes"), a.values, "     ")
                    evs = sp.get("events", [])
                    names = {}
                    for e in evs:
                        names[e["name"]] = names.get(e["name"], 0) + 1
                    for e in evs:
                        if names.get(e["name"]) is None:
                            continue
                        print(f"     event {e['name']!r} x{names[e['name']]} t={e.get('timeUnixNano')}")
                        fmt_attrs(e.get("attributes"), a.values, "       ")
                        names[e["name"]] = None


if __name__ == "__main__":
    sys.exit(main())
