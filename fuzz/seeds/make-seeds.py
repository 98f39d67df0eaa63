#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/seeds/<target>/ (run from the repo root:
`python3 fuzz/seeds/make-seeds.py`). Sources: SDK request shapes (Go, Java/okhttp, Python,
.NET, connect-go), tests/data/label-vectors.json, examples/*.alloy, examples/relabel.alloy."""
import base64, gzip, hashlib, json, os, struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def chunked(data, sizes=(7,)):
    out, i, k = b"", 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out += b"%x\r\n" % len(data[i:i + n]) + data[i:i + n] + b"\r\n"
        i, k = i + n, k + 1
    return out + b"0\r\n\r\n"


# --- push bodies (proto, protojson, gRPC-Web, gzip) ---
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


PPROF = gzip.compress(b"\x0a\x04\x08\x01\x10\x02fake pprof", mtime=0)
PY_LABELS = [("__name__", "process_cpu"), ("env", "staging"), ("region", "eu"),
             ("service_name", "myapp"), ("otel.scope.name", "com.grafana.pyroscope/python"),
             ("process.runtime.name", "cpython")]
DOTNET_LABELS = [("__name__", "wall"), ("service_name", "shop"), ("spy_name", "dotnetspy")]


def proto(series):
    body = b""
    for labels, samples in series:
        s = b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels)
        s += b"".join(field(2, field(1, raw) + field(2, i.encode())) for raw, i in samples)
        body += field(1, s)
    return body


def protojson(series, raw_key="rawProfile"):
    return json.dumps({"series": [
        {"labels": [{"name": k, "value": v} for k, v in labels],
         "samples": [{raw_key: base64.b64encode(raw).decode(), "ID": i} for raw, i in samples]}
        for labels, samples in series]})


py = [(PY_LABELS, [(PPROF, "0b4c1a2e-8d5f-4e3a-9c1b-7f2e6d5a4b3c")])]
dotnet = [(DOTNET_LABELS, [(PPROF, "")]), ([("__name__", "alloc"), ("service_name", "shop")], [(PPROF, "")])]
for series in (py, dotnet, [([("__name__", "app")], [])], []):
    put("push", proto(series))
    put("push", protojson(series))
put("push", protojson(py, "raw_profile"))
put("push", gzip.compress(proto(py), mtime=0))
put("push", b"\x00" + struct.pack(">I", len(proto(dotnet))) + proto(dotnet))
put("push", '{"code":"internal","message":"invalid labels in profile: service name is required"}')
put("push", "10S")

# --- request heads and framing ---
GO_BODY = (b"--b7f3\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\n"
           b"Content-Type: application/octet-stream\r\n\r\n" + PPROF + b"\r\n--b7f3--\r\n")
go = (b"POST /ingest?name=checkout.cpu%7Benv%3Dprod%2Cregion%3Deu%7D&from=1700000000&until=1700000010"
      b"&spyName=gospy&sampleRate=100&units=samples&aggregationType=sum HTTP/1.1\r\n"
      b"Host: localhost:9999\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: " + str(len(GO_BODY)).encode() +
      b"\r\nContent-Type: multipart/form-data; boundary=b7f3\r\nAccept-Encoding: gzip\r\n\r\n") + GO_BODY
java_body = b"foo;bar;baz 12\nfoo;qux 3\n"
java = (b"POST /ingest?name=shop.itimer%7Bhost%3Dweb-1%7D&format=jfr&from=1700000000&until=1700000010 HTTP/1.1\r\n"
        b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nHost: pyroscope:4040\r\n"
        b"Connection: Keep-Alive\r\nAccept-Encoding: gzip\r\nUser-Agent: okhttp/4.12.0\r\n\r\n") + chunked(java_body)
push_head = (b"POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: 127.0.0.1:9999\r\n"
             b"Content-Type: application/proto\r\nConnect-Protocol-Version: 1\r\n"
             b"User-Agent: connect-go/1.18.1 (go1.24.0)\r\nContent-Length: %d\r\n\r\n" % len(proto(dotnet))) + proto(dotnet)
folded = (b"POST /ingest?name=app&format=folded HTTP/1.1\r\nHost: a\r\nContent-Length: 14\r\n"
          b"Expect: 100-continue\r\n\r\nmain;work 100\n")
http10 = b"POST /ingest?name=app HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nabcde"
get = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
absolute = b"POST http://gw:9999/ingest?name=app HTTP/1.1\r\nHost: gw:9999\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
for req in (go, java, push_head, folded, http10, get, absolute, go + get, java + folded + get,
            b"POST /ingest HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
            b"POST /ingest HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            b"POST /ingest HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"\r\nPOST /ingest HTTP/1.7\r\nHost: h\r\nConnection: close\r\n\r\n"):
    put("request_head", req)

# --- chunked bodies: first byte = number of split sizes (mod 8), then the sizes, then the body ---
for body in (chunked(java_body), chunked(GO_BODY, (64, 1, 300)), b"0\r\n\r\n",
             b"5 \t;name=value\r\nhello\r\n0\r\nTrailer: x\r\n\r\n", b"A\r\n0123456789\r\n0\r\n\r\nGET"):
    put("chunked", b"\x00" + body)
    put("chunked", b"\x03\x00\x05\x0f" + body)

# --- response heads: first byte bit 0 = request was HEAD ---
for resp in (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
             b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 11\r\n\r\nbad request",
             b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
             b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\nConnection: close\r\n\r\n",
             b"HTTP/1.0 204 No Content\r\n\r\n"):
    put("response_head", b"\x00" + resp)
    put("response_head", b"\x01" + resp)

# --- label strings and ingest queries ---
vectors = json.load(open(os.path.join(ROOT, "tests", "data", "label-vectors.json")))
for v in vectors["labelset"]:
    put("labelset", v["input"])
    put("labels", v["input"])
for v in vectors["ingest"]:
    put("labels", v["query"])
put("labelset", b"app{k=\xe2\x82,j=\xff v}")
put("labelset", "app\u3000{ \u2028k\u00a0=\u0085v }")

# --- configs ---
for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
    if name.endswith(".alloy"):
        put("config", open(os.path.join(ROOT, "examples", name), "rb").read())

# --- relabel: rule lines, an empty line, label-set lines (see fuzz_targets/relabel.rs) ---
SETS = ("__name__=process_cpu\tenv=staging\tservice_name=checkout\tpod=checkout-7d9f\n"
        "service_name=test-api\tenv=dev\n"
        "__name__=wall\tservice_name=shop\tspy_name=dotnetspy\tapp_name=shop.wall\n")
put("relabel", "replace\t(.*)\tenv\t;\tenvironment\t$1\n"
               "labeldrop\tenv\n"
               "drop\ttest-.*\tservice_name\n"
               "hashmod\t(.*)\tpod\t;\tshard\t$1\t4\n\n" + SETS)
put("relabel", "labelmap\t__(.+)__\t\t;\t\tmeta_$1\n"
               "replace\t(?P<svc>[a-z]+)-(\\d+)\tservice_name,pod\t/\t${svc}_id\t$2\n"
               "keep\t(?i)Checkout|shop\tservice_name\n"
               "lowercase\t\tspy_name\t;\tspy\n"
               "keepequal\t\tservice_name\t;\tapp_name\n\n" + SETS)
put("relabel", "uppercase\t\tenv\t;\tENV\nlabelkeep\t(__name__|service_name|ENV)\n"
               "dropequal\t\tenv\t;\tregion\n\n" + SETS)
for regex in ("(.*)", "test-.*", "[[:alpha:]]+\\pL{2,5}?", "(?s:a.b)|(?U)x*y+", "\\Qa.b\\E\\z",
              "a{1000}", "(?P<name>x)(?:y|z){0,3}$", "[^\\x00-\\x{10FFFF}]", "\\b\\B^$", "(a|ab)(c|bcd)(d*)"):
    put("relabel", regex + "\n\n" + SETS)
