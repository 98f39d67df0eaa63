//! Upload bodies in every SDK shape, with the checksum trailer the sink verifies.
//!
//! Owns: the seeded byte source, the size mixes of real SDK uploads (Go SDK 2–50 KB per profile
//! type; Java JFR 48–250 KB, grafana/pyroscope `pkg/og/convert/jfr/testdata/*.jfr.gz`; .NET pprof
//! 54–260 KB, pyroscope-dotnet's test pprofs; Pyroscope's 4 MiB `max_profile_size_bytes`,
//! `pkg/validation/limits.go`, as the ceiling),
//! the label sets, the body templates (Go multipart pprof, raw gzip pprof, Java JFR multipart
//! with a `labels` part, folded text, gzip'd Push protobuf) and the per-upload trailer. Does not
//! own any I/O. Cold relative to the gateway (pure, built before a run; per upload only the
//! trailer and the query string are made).
//!
//! # The trailer (what survives forwarding)
//! Every profile payload ends with [`TRAILER_LEN`] ASCII bytes
//! `\n#lt1:<run 8 hex>:<seq 16 hex>:<sum 16 hex>\n`, where `sum` mixes a 64-bit hash of every
//! payload byte before the trailer with `run` and `seq`. The payload is the whole body for
//! `/ingest` (after a multipart body's closing delimiter it is the epilogue, which RFC 2046 §5.1.1
//! says to ignore; in folded text it is a line without a space, which Pyroscope skips), and the
//! `raw_profile` of each sample for Push. pyrogate forwards `/ingest` bodies byte for byte and
//! Push `raw_profile`s byte for byte (it re-encodes the labels around them), and nginx forwards
//! bodies untouched, so the trailer reaches the sink unchanged through every system; a query
//! parameter would not survive a Push, and the sample `ID` would not exist on `/ingest`.

use std::sync::Arc;

use bytes::Bytes;
pub use testkit::Prng;

use crate::sdk_push;
pub use testkit::gzip::gzip_stored;

/// Bytes of the checksum trailer at the end of every profile payload.
pub const TRAILER_LEN: usize = 49;
/// What a trailer starts with.
const TRAILER_MAGIC: &[u8] = b"\n#lt1:";
/// Pyroscope's `max_profile_size_bytes` (4 MiB): the largest body any mix produces.
pub const MAX_PROFILE_BYTES: usize = 4 * 1024 * 1024;

/// A fast 64-bit hash of `data` (word at a time, multiply-rotate; not cryptographic: it
/// detects corruption, truncation and reordering, which is all the integrity check needs).
pub fn sum64(data: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = 0xCBF2_9CE4_8422_2325 ^ (data.len() as u64);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K).rotate_left(29);
    }
    h ^ (h >> 31)
}

/// The trailer's `sum`: the prefix hash bound to the upload's identity.
fn seal(prefix_sum: u64, run: u32, seq: u64) -> u64 {
    let mut h = prefix_sum ^ (u64::from(run) << 32);
    h = (h ^ seq).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^ (h >> 33)
}

/// An upload's identity: the generator run and the upload's sequence number in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId {
    pub run: u32,
    pub seq: u64,
}

/// The trailer bytes for an upload whose payload prefix hashes to `prefix_sum`.
pub fn trailer(prefix_sum: u64, id: UploadId) -> [u8; TRAILER_LEN] {
    let text = format!(
        "\n#lt1:{:08x}:{:016x}:{:016x}\n",
        id.run,
        id.seq,
        seal(prefix_sum, id.run, id.seq)
    );
    let mut out = [0u8; TRAILER_LEN];
    out.copy_from_slice(text.as_bytes());
    out
}

/// What the sink learns from a payload's last bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The trailer is present and the checksum matches.
    Valid(UploadId),
    /// No trailer: not a generated upload (a replayed capture of real traffic, a curl).
    Unmarked,
    /// A trailer whose checksum does not match the bytes: corrupted or truncated in transit.
    Corrupt,
}

/// Checks the trailer at the end of `payload`.
pub fn verify(payload: &[u8]) -> Verdict {
    let Some(split) = payload.len().checked_sub(TRAILER_LEN) else {
        return Verdict::Unmarked;
    };
    let (prefix, tail) = payload.split_at(split);
    if !tail.starts_with(TRAILER_MAGIC) || tail.last() != Some(&b'\n') {
        return Verdict::Unmarked;
    }
    let fields = &tail[TRAILER_MAGIC.len()..TRAILER_LEN - 1];
    let mut it = fields.split(|&b| b == b':');
    let (Some(run), Some(seq), Some(sum), None) = (it.next(), it.next(), it.next(), it.next())
    else {
        return Verdict::Corrupt;
    };
    let hex = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
    };
    let (Some(run), Some(seq), Some(sum)) = (hex(run), hex(seq), hex(sum)) else {
        return Verdict::Corrupt;
    };
    let Ok(run) = u32::try_from(run) else {
        return Verdict::Corrupt;
    };
    if seal(sum64(prefix), run, seq) == sum {
        Verdict::Valid(UploadId { run, seq })
    } else {
        Verdict::Corrupt
    }
}

/// Pseudo-pprof bytes: a protobuf-looking prefix, then noise, `len` bytes long.
fn fake_pprof(rng: &mut Prng, len: usize) -> Vec<u8> {
    let mut out = vec![0x0a, 0x04, 0x08, 0x01, 0x10, 0x02];
    out.truncate(len);
    let rest = len - out.len();
    rng.fill(&mut out, rest);
    out
}

/// The SDK upload shapes (what each SDK sends: pyroscope-go `upstream/remote/remote.go`,
/// pyroscope-java `PyroscopeExporter.java`, `@pyroscope/nodejs`, pyroscope-rs `src/session.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// pyroscope-go: multipart `profile` (gzip pprof) + `sample_type_config`, ns timestamps.
    GoMultipart,
    /// @pyroscope/nodejs, old Python/Ruby: raw gzip pprof, `format=pprof`.
    GzipPprof,
    /// Java agent: multipart `jfr` + `labels` (both gzip), `format=jfr`.
    JfrMultipart,
    /// Folded text (`a;b;c 10` lines), no Content-Type.
    Folded,
    /// Rust/Python/Ruby SDK ≥1.0: Connect Push, gzip'd `PushRequest`, 1 series × 1 sample.
    PushGzip,
    /// The Python SDK's Push exactly ([`crate::sdk_push`]): a compressible ~61 KB pprof, the
    /// whole request deflated (~18 KB on the wire).
    PushPython,
    /// The .NET SDK's Push ([`crate::sdk_push`]): not compressed, a gzip'd pprof as
    /// `raw_profile`, empty `ID`.
    PushDotnet,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::GoMultipart,
        Shape::GzipPprof,
        Shape::JfrMultipart,
        Shape::Folded,
        Shape::PushGzip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::GoMultipart => "go-multipart",
            Shape::GzipPprof => "gzip-pprof",
            Shape::JfrMultipart => "jfr-multipart",
            Shape::Folded => "folded",
            Shape::PushGzip => "push-gzip",
            Shape::PushPython => "push-python",
            Shape::PushDotnet => "push-dotnet",
        }
    }
}

/// Which shapes and sizes a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Go SDK multipart only, 2–64 KB (cpu, heap, mutex, block, goroutine profiles).
    Go,
    /// Every shape, 2 KB to 4 MB (most small, a tail of JFR/.NET-sized and 1–4 MB bodies).
    All,
    /// Java agent JFR multipart uploads, 160–240 KB (~200 KB).
    Jfr,
    /// The Python SDK's Push: one series, a 56–66 KB pprof, the request gzip'd to ~18 KB.
    PushPython,
    /// The .NET SDK's Push: one series, a 54–260 KB gzip'd pprof, the request uncompressed.
    PushDotnet,
}

impl Mix {
    pub fn parse(s: &str) -> Option<Mix> {
        match s {
            "go" => Some(Mix::Go),
            "all" => Some(Mix::All),
            "jfr" => Some(Mix::Jfr),
            "push-python" => Some(Mix::PushPython),
            "push-dotnet" => Some(Mix::PushDotnet),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mix::Go => "go",
            Mix::All => "all",
            Mix::Jfr => "jfr",
            Mix::PushPython => "push-python",
            Mix::PushDotnet => "push-dotnet",
        }
    }

    /// Every mix, in the order the help lists them.
    pub const ALL: [Mix; 5] = [
        Mix::Go,
        Mix::All,
        Mix::Jfr,
        Mix::PushPython,
        Mix::PushDotnet,
    ];

    /// Size classes `(weight %, min bytes, max bytes)`; the weights sum to 100.
    pub fn size_classes(self) -> &'static [(u32, usize, usize)] {
        match self {
            Mix::Go => &[
                (40, 2 << 10, 8 << 10),
                (40, 8 << 10, 24 << 10),
                (20, 24 << 10, 64 << 10),
            ],
            Mix::All => &[
                (50, 2 << 10, 16 << 10),
                (25, 16 << 10, 64 << 10),
                (15, 64 << 10, 256 << 10),
                (8, 256 << 10, 1 << 20),
                (2, 1 << 20, MAX_PROFILE_BYTES),
            ],
            Mix::Jfr => &[(100, 160 << 10, 240 << 10)],
            Mix::PushPython => &[(100, 56 << 10, 66 << 10)],
            Mix::PushDotnet => &[(100, 54 << 10, 260 << 10)],
        }
    }

    /// The body size at quantile `q` in `[0, 1)` of this mix (uniform within a class).
    pub fn size_at(self, q: f64) -> usize {
        let mut acc = 0.0;
        let classes = self.size_classes();
        for &(weight, lo, hi) in classes {
            let w = f64::from(weight) / 100.0;
            if q < acc + w {
                let within = (q - acc) / w;
                return lo + ((hi - lo) as f64 * within) as usize;
            }
            acc += w;
        }
        classes.last().map_or(2 << 10, |c| c.2)
    }

    fn shapes(self) -> &'static [Shape] {
        match self {
            Mix::Go => &[Shape::GoMultipart],
            Mix::All => &Shape::ALL,
            Mix::Jfr => &[Shape::JfrMultipart],
            Mix::PushPython => &[Shape::PushPython],
            Mix::PushDotnet => &[Shape::PushDotnet],
        }
    }
}

/// One distinct label set: the `/ingest` `name` (query-escaped) and the Push labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet {
    pub service: String,
    /// `(name, value)` pairs besides `service_name`, e.g. env, region, pod.
    pub tags: Vec<(String, String)>,
}

impl LabelSet {
    /// `svc.cpu{k=v,...}` for `/ingest`, escaped as Go's `url.QueryEscape`.
    pub fn ingest_name(&self, suffix: &str) -> String {
        let mut raw = format!("{}.{suffix}{{", self.service);
        for (i, (k, v)) in self.tags.iter().enumerate() {
            if i > 0 {
                raw.push(',');
            }
            raw.push_str(k);
            raw.push('=');
            raw.push_str(v);
        }
        raw.push('}');
        let mut out = String::with_capacity(raw.len() * 2);
        pyrogate::labels::query_escape(raw.as_bytes(), &mut out);
        out
    }
}

/// `count` distinct label sets: services × environments × regions × pods.
pub fn label_sets(count: usize, seed: u64) -> Vec<LabelSet> {
    const ENVS: [&str; 3] = ["production", "staging", "dev"];
    const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "ap-south-1", "sa-east-1"];
    let mut rng = Prng::new(seed ^ 0x1abe15);
    (0..count.max(1))
        .map(|i| LabelSet {
            service: format!("svc-{}", i % 40),
            tags: vec![
                ("env".into(), ENVS[i % ENVS.len()].into()),
                ("pod".into(), format!("pod-{i}-{}", rng.hex(3))),
                ("region".into(), REGIONS[(i / 3) % REGIONS.len()].into()),
            ],
        })
        .collect()
}

/// One pre-built body: everything but the trailer (and, for Push, the gzip framing).
#[derive(Debug, Clone)]
pub struct Template {
    pub shape: Shape,
    /// `/ingest` query parameters other than `name`, in the SDK's order.
    pub query_tail: &'static str,
    /// The app-name suffix (profile type) for `name`.
    pub suffix: &'static str,
    pub content_type: Option<String>,
    /// The payload before the trailer: the body (`/ingest`) or the `raw_profile` (Push).
    pub prefix: Bytes,
    pub prefix_sum: u64,
    /// [`Shape::PushPython`]: `prefix` deflated once, the middle of every request's gzip.
    pub deflated: Option<sdk_push::Deflated>,
}

/// A ready-to-send request: target, headers and the body as pieces written back to back.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<Bytes>,
}

impl Request {
    pub fn body_len(&self) -> usize {
        self.body.iter().map(Bytes::len).sum()
    }

    /// The request head (HTTP/1.1, keep-alive, `Content-Length`).
    pub fn head(&self, host: &str) -> Vec<u8> {
        let mut h = format!("POST {} HTTP/1.1\r\nHost: {host}\r\n", self.target);
        for (n, v) in &self.headers {
            h.push_str(n);
            h.push_str(": ");
            h.push_str(v);
            h.push_str("\r\n");
        }
        h.push_str(&format!("Content-Length: {}\r\n\r\n", self.body_len()));
        h.into_bytes()
    }
}

/// The templates of a run, and how a request is made from one.
#[derive(Debug, Clone)]
pub struct BodyPool {
    pub mix: Mix,
    pub templates: Arc<[Template]>,
    pub labels: Arc<[LabelSet]>,
}

/// How many templates a pool holds (sizes spread over the mix's quantiles).
pub const DEFAULT_TEMPLATES: usize = 50;

impl BodyPool {
    /// `templates` bodies whose sizes sit at evenly spaced quantiles of the mix, shapes in
    /// turn, and `label_sets` distinct label sets.
    pub fn new(mix: Mix, templates: usize, label_sets_count: usize, seed: u64) -> BodyPool {
        let mut rng = Prng::new(seed);
        let shapes = mix.shapes();
        let n = templates.max(1);
        let built: Vec<Template> = (0..n)
            .map(|i| {
                let q = (i as f64 + 0.5) / n as f64;
                let size = mix.size_at(q);
                let shape = shapes[i % shapes.len()];
                build_template(shape, size, &mut rng)
            })
            .collect();
        BodyPool {
            mix,
            templates: built.into(),
            labels: label_sets(label_sets_count, seed).into(),
        }
    }

    /// The request for upload `id`: template and label set chosen from the sequence number.
    pub fn request(&self, id: UploadId) -> Request {
        let t = &self.templates[(id.seq.wrapping_mul(7919) % self.templates.len() as u64) as usize];
        let l = &self.labels[(id.seq % self.labels.len() as u64) as usize];
        make_request(t, l, id)
    }

    /// Mean body bytes of the pool.
    pub fn mean_body_bytes(&self) -> usize {
        self.templates.iter().map(|t| t.prefix.len()).sum::<usize>() / self.templates.len().max(1)
    }
}

fn build_template(shape: Shape, size: usize, rng: &mut Prng) -> Template {
    let size = size.saturating_sub(TRAILER_LEN).max(64);
    let (query_tail, suffix, content_type, prefix): (
        &'static str,
        &'static str,
        Option<String>,
        Vec<u8>,
    ) = match shape {
        Shape::GoMultipart => {
            let boundary = rng.hex(30);
            let config: &[u8] = br#"{"alloc_objects":{"units":"objects"},"alloc_space":{"units":"bytes"},"inuse_space":{"units":"bytes","aggregation":"average"},"inuse_objects":{"units":"objects","aggregation":"average"}}"#;
            let overhead = 2 * 180 + config.len() + 18;
            let profile = gzip_stored(&fake_pprof(rng, size.saturating_sub(overhead).max(16)));
            let (ct, body) = testkit::bodies::multipart(
                &boundary,
                &[
                    (
                        "profile",
                        "profile.pprof",
                        Some("application/octet-stream"),
                        &profile,
                    ),
                    (
                        "sample_type_config",
                        "sample_type_config.json",
                        Some("application/octet-stream"),
                        config,
                    ),
                ],
            );
            (
                "aggregationType=sum&from=1700000000000000000&sampleRate=100&spyName=gospy&units=samples&until=1700000015000000000",
                "cpu",
                Some(ct),
                body,
            )
        }
        Shape::GzipPprof => (
            "format=pprof&from=1700000000&spyName=nodespy&until=1700000060&sampleRate=100",
            "wall",
            Some("application/octet-stream".into()),
            gzip_stored(&fake_pprof(rng, size.saturating_sub(18))),
        ),
        Shape::JfrMultipart => {
            let boundary = testkit::bodies::okhttp_boundary(rng);
            let mut jfr = testkit::bodies::JFR_HEADER.to_vec();
            rng.fill(&mut jfr, size.saturating_sub(700));
            let jfr = gzip_stored(&jfr);
            let mut labels = Vec::new();
            rng.fill(&mut labels, 300);
            let labels = gzip_stored(&labels);
            let (ct, body) = testkit::bodies::multipart(
                &boundary,
                &[
                    ("jfr", "jfr", Some("application/octet-stream"), &jfr),
                    ("labels", "labels", Some("application/x-protobuf"), &labels),
                ],
            );
            (
                "units=samples&aggregationType=sum&from=1700000000&until=1700000010&spyName=javaspy&sampleRate=100&format=jfr",
                "cpu",
                Some(ct),
                body,
            )
        }
        Shape::Folded => {
            let mut body = Vec::with_capacity(size + 64);
            let mut i = 0u64;
            while body.len() < size {
                body.extend_from_slice(
                    format!(
                        "main;handler_{};work_{:x};leaf_{} {}\n",
                        i % 7,
                        rng.next_u64() & 0xffff,
                        i % 13,
                        1 + rng.next_u64() % 500
                    )
                    .as_bytes(),
                );
                i += 1;
            }
            (
                "from=1700000000&until=1700000010&sampleRate=100&spyName=ebpfspy",
                "cpu",
                None,
                body,
            )
        }
        Shape::PushGzip => (
            "",
            "cpu",
            Some("application/proto".into()),
            fake_pprof(rng, size),
        ),
        Shape::PushPython => (
            "",
            "cpu",
            Some("application/proto".into()),
            sdk_push::pprof_like(rng, size),
        ),
        // The SDK gzips each pprof itself (incompressible on the wire).
        Shape::PushDotnet => (
            "",
            "cpu",
            Some("application/proto".into()),
            gzip_stored(&fake_pprof(rng, size.saturating_sub(18))),
        ),
    };
    let prefix_sum = sum64(&prefix);
    let deflated = (shape == Shape::PushPython).then(|| sdk_push::Deflated::new(&prefix));
    Template {
        shape,
        query_tail,
        suffix,
        content_type,
        prefix: Bytes::from(prefix),
        prefix_sum,
        deflated,
    }
}

/// The Push labels of a label set (as the Rust/Python SDKs send them).
pub fn push_labels(l: &LabelSet) -> Vec<(String, String)> {
    let mut labels = vec![
        ("__name__".to_string(), "process_cpu".to_string()),
        ("service_name".to_string(), l.service.clone()),
    ];
    labels.extend(l.tags.iter().cloned());
    labels.push((
        "otel.scope.name".into(),
        "com.grafana.pyroscope/rust".into(),
    ));
    labels
}

fn make_request(t: &Template, l: &LabelSet, id: UploadId) -> Request {
    let trailer = Bytes::copy_from_slice(&trailer(t.prefix_sum, id));
    let mut headers = Vec::with_capacity(2);
    if let Some(ct) = &t.content_type {
        headers.push(("Content-Type".to_string(), ct.clone()));
    }
    if matches!(t.shape, Shape::PushPython | Shape::PushDotnet) {
        return sdk_request(t, l, id, trailer, headers);
    }
    if t.shape == Shape::PushGzip {
        let raw_profile = [t.prefix.as_ref(), trailer.as_ref()].concat();
        let sample = pyrogate::push::Sample {
            raw_profile: Bytes::from(raw_profile),
            id: format!(
                "{:08x}-0000-4000-8000-{:012x}",
                id.run,
                id.seq & 0xFFFF_FFFF_FFFF
            ),
        };
        let parts = pyrogate::push::encode_series(&push_labels(l), std::slice::from_ref(&sample));
        let proto = parts.concat();
        headers.push(("Content-Encoding".into(), "gzip".into()));
        return Request {
            target: pyrogate::push::PUSH_PATH.to_string(),
            headers,
            body: vec![Bytes::from(gzip_stored(&proto))],
        };
    }
    let name = l.ingest_name(t.suffix);
    let target = if t.query_tail.is_empty() {
        format!("/ingest?name={name}")
    } else {
        format!("/ingest?name={name}&{}", t.query_tail)
    };
    Request {
        target,
        headers,
        body: vec![t.prefix.clone(), trailer],
    }
}

/// The ID the Python SDK's sample carries (a UUID v4 in form; the upload's identity inside).
pub fn sample_uuid(id: UploadId) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        id.run,
        id.seq & 0xFFFF_FFFF_FFFF
    )
}

/// A Push of the Python or .NET SDK's shape: per upload only the message head (labels,
/// lengths), the trailer and the `ID` are made; the pprof (Python: already deflated) is shared.
fn sdk_request(
    t: &Template,
    l: &LabelSet,
    id: UploadId,
    trailer: Bytes,
    mut headers: Vec<(String, String)>,
) -> Request {
    let raw_len = t.prefix.len() + trailer.len();
    let body = match &t.deflated {
        Some(deflated) => {
            let idf = sdk_push::id_field(&sample_uuid(id));
            let head = sdk_push::message_head(&sdk_push::python_labels(l), raw_len, idf.len());
            let tail = [trailer.as_ref(), &idf].concat();
            headers.push(("Content-Encoding".into(), "gzip".into()));
            headers.push(("User-Agent".into(), sdk_push::PYTHON_USER_AGENT.into()));
            sdk_push::gzip_pieces(&head, deflated, &tail).to_vec()
        }
        None => {
            headers.push(("User-Agent".into(), sdk_push::DOTNET_USER_AGENT.into()));
            let head = sdk_push::message_head(&sdk_push::dotnet_labels(l), raw_len, 0);
            vec![Bytes::from(head), t.prefix.clone(), trailer]
        }
    };
    Request {
        target: pyrogate::push::PUSH_PATH.to_string(),
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64) -> UploadId {
        UploadId {
            run: 0xabcd1234,
            seq,
        }
    }

    fn body_of(r: &Request) -> Vec<u8> {
        r.body.concat()
    }

    #[test]
    fn a_sealed_payload_verifies_with_its_identity() {
        let prefix = b"main;work 10\n".to_vec();
        let mut payload = prefix.clone();
        payload.extend_from_slice(&trailer(sum64(&prefix), id(42)));
        assert_eq!(verify(&payload), Verdict::Valid(id(42)));
    }

    #[test]
    fn the_trailer_is_exactly_the_documented_text() {
        let t = trailer(0, UploadId { run: 1, seq: 2 });
        assert_eq!(t.len(), TRAILER_LEN);
        assert!(t.starts_with(b"\n#lt1:00000001:0000000000000002:"));
        assert_eq!(t.last(), Some(&b'\n'));
    }

    #[test]
    fn one_flipped_byte_or_a_truncation_is_corrupt_and_no_trailer_is_unmarked() {
        let mut payload = vec![7u8; 1000];
        let t = trailer(sum64(&payload), id(9));
        payload.extend_from_slice(&t);
        let mut flipped = payload.clone();
        flipped[500] ^= 1;
        assert_eq!(verify(&flipped), Verdict::Corrupt);
        let mut shifted = payload[1..].to_vec();
        shifted.insert(0, 7);
        shifted[0] = 8;
        assert_eq!(verify(&shifted), Verdict::Corrupt);
        let mut wrong_seq = payload.clone();
        let at = payload.len() - TRAILER_LEN + 6 + 8 + 1 + 15;
        wrong_seq[at] = b'8';
        assert_eq!(verify(&wrong_seq), Verdict::Corrupt);
        assert_eq!(verify(b"main;work 10\n"), Verdict::Unmarked);
        assert_eq!(verify(&payload[..payload.len() - 1]), Verdict::Unmarked);
    }

    #[test]
    fn every_ingest_shape_verifies_and_carries_its_sdk_markers() {
        let pool = BodyPool::new(Mix::All, 10, 7, 1);
        let mut seen = std::collections::BTreeSet::new();
        for seq in 0..40 {
            let r = pool.request(id(seq));
            let body = body_of(&r);
            let t = &pool.templates[(seq.wrapping_mul(7919) % 10) as usize];
            seen.insert(t.shape);
            match t.shape {
                Shape::PushGzip => {
                    assert_eq!(r.target, "/push.v1.PusherService/Push");
                    let plain = pyrogate::push::gunzip_bounded(&body, 1 << 30).unwrap();
                    let push = pyrogate::push::decode_proto(&plain).unwrap();
                    assert_eq!(push.series.len(), 1);
                    assert_eq!(
                        push.series[0].labels[0],
                        ("__name__".to_string(), "process_cpu".to_string())
                    );
                    assert_eq!(
                        verify(&push.series[0].samples[0].raw_profile),
                        Verdict::Valid(id(seq))
                    );
                }
                shape => {
                    assert!(r.target.starts_with("/ingest?name=svc-"), "{}", r.target);
                    assert_eq!(verify(&body), Verdict::Valid(id(seq)), "{shape:?}");
                    let ct = r
                        .headers
                        .iter()
                        .find(|h| h.0 == "Content-Type")
                        .map(|h| h.1.as_str());
                    match shape {
                        Shape::GoMultipart => {
                            assert!(ct.unwrap().starts_with("multipart/form-data; boundary="));
                            assert!(r.target.contains("spyName=gospy"));
                            let text = String::from_utf8_lossy(&body);
                            assert!(text.contains("name=\"profile\"; filename=\"profile.pprof\""));
                        }
                        Shape::GzipPprof => {
                            assert_eq!(ct, Some("application/octet-stream"));
                            assert_eq!(&body[..2], &[0x1f, 0x8b]);
                        }
                        Shape::JfrMultipart => assert!(r.target.ends_with("&format=jfr")),
                        Shape::Folded => {
                            assert_eq!(ct, None);
                            assert!(body.starts_with(b"main;handler_0;work_"));
                        }
                        Shape::PushGzip | Shape::PushPython | Shape::PushDotnet => {
                            unreachable!()
                        }
                    }
                }
            }
        }
        assert_eq!(seen.len(), Shape::ALL.len());
    }

    fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|h| h.0 == name).map(|h| h.1.as_str())
    }

    #[test]
    fn python_sdk_pushes_are_gzipd_valid_push_requests_of_about_18_kb() {
        let pool = BodyPool::new(Mix::PushPython, 8, 5, 2);
        for seq in 0..16 {
            let r = pool.request(id(seq));
            assert_eq!(r.target, "/push.v1.PusherService/Push");
            assert_eq!(header(&r, "Content-Type"), Some("application/proto"));
            assert_eq!(header(&r, "Content-Encoding"), Some("gzip"));
            assert_eq!(
                header(&r, "User-Agent"),
                Some("pyroscope-rs/pyspy/1.4.0 reqwest")
            );
            let body = body_of(&r);
            assert_eq!(r.body_len(), body.len());
            // testkit's inflater checks the CRC-32 and ISIZE of the gzip trailer.
            let plain = testkit::gzip::gunzip_bounded(&body, 1 << 20).expect("valid gzip");
            let n = body.len();
            assert_eq!(
                &body[n - 4..],
                &((plain.len() as u32).to_le_bytes()),
                "ISIZE"
            );
            let push = testkit::push::PushRequest::decode(&plain).expect("a PushRequest");
            assert_eq!(push.series.len(), 1);
            let series = &push.series[0];
            assert_eq!(series.samples.len(), 1);
            assert_eq!(series.label("__name__"), Some("process_cpu"));
            assert_eq!(
                series.label("otel.scope.name"),
                Some("com.grafana.pyroscope/python")
            );
            assert!(series.label("service_name").unwrap().starts_with("svc-"));
            let sample = &series.samples[0];
            assert_eq!(sample.id, sample_uuid(id(seq)));
            assert_eq!(sample.id.len(), 36);
            assert_eq!(verify(&sample.raw_profile), Verdict::Valid(id(seq)));
            // A ~61 KB pprof, ~18 KB on the wire.
            let raw = sample.raw_profile.len();
            assert!((56 << 10..=66 << 10).contains(&raw), "pprof {raw}");
            assert!((15_000..=22_000).contains(&n), "wire {n} for pprof {raw}");
            // pyrogate's own codec reads it as well.
            let ours = pyrogate::push::gunzip_bounded(&body, 1 << 20).unwrap();
            assert_eq!(pyrogate::push::decode_proto(&ours).unwrap().series.len(), 1);
        }
    }

    #[test]
    fn dotnet_sdk_pushes_are_uncompressed_valid_push_requests_of_54_to_260_kb() {
        let pool = BodyPool::new(Mix::PushDotnet, 10, 5, 2);
        let mut sizes = Vec::new();
        for seq in 0..10 {
            let r = pool.request(id(seq));
            assert_eq!(r.target, "/push.v1.PusherService/Push");
            assert_eq!(header(&r, "Content-Type"), Some("application/proto"));
            assert_eq!(header(&r, "Content-Encoding"), None);
            assert_eq!(
                header(&r, "User-Agent"),
                Some("pyroscope-dotnet/1.0.0 cpp-httplib")
            );
            let body = body_of(&r);
            let push = testkit::push::PushRequest::decode(&body).expect("a PushRequest");
            assert_eq!(push.series.len(), 1);
            let series = &push.series[0];
            assert_eq!(series.label("spy_name"), Some("dotnetspy"));
            let sample = &series.samples[0];
            assert_eq!(sample.id, "");
            assert_eq!(&sample.raw_profile[..2], &[0x1f, 0x8b], "a gzip'd pprof");
            assert_eq!(verify(&sample.raw_profile), Verdict::Valid(id(seq)));
            sizes.push(body.len());
            assert_eq!(
                pyrogate::push::decode_proto(&Bytes::from(body.clone()))
                    .unwrap()
                    .series
                    .len(),
                1
            );
        }
        let (lo, hi) = (*sizes.iter().min().unwrap(), *sizes.iter().max().unwrap());
        assert!(lo >= 54 << 10 && hi <= (260 << 10) + 1024, "{lo}..{hi}");
        assert!(hi - lo > 150 << 10, "spread over the range: {lo}..{hi}");
    }

    #[test]
    fn jfr_mix_is_java_multipart_of_about_200_kb() {
        let pool = BodyPool::new(Mix::Jfr, 10, 5, 2);
        for seq in 0..10 {
            let r = pool.request(id(seq));
            assert!(r.target.ends_with("&format=jfr"), "{}", r.target);
            assert!(
                header(&r, "Content-Type")
                    .unwrap()
                    .starts_with("multipart/form-data")
            );
            let body = body_of(&r);
            assert_eq!(verify(&body), Verdict::Valid(id(seq)));
            assert!(
                (160 << 10..=241 << 10).contains(&body.len()),
                "{}",
                body.len()
            );
        }
        let mean = pool.mean_body_bytes();
        assert!((190 << 10..=210 << 10).contains(&mean), "{mean}");
    }

    #[test]
    fn every_mix_parses_from_its_name() {
        for m in Mix::ALL {
            assert_eq!(Mix::parse(m.name()), Some(m));
            let classes = m.size_classes();
            assert_eq!(classes.iter().map(|c| c.0).sum::<u32>(), 100, "{m:?}");
        }
        assert_eq!(Mix::parse("java"), None);
    }

    #[test]
    fn gzip_stored_round_trips_through_a_real_inflater() {
        let mut data = Vec::new();
        Prng::new(3).fill(&mut data, 200_000);
        let gz = gzip_stored(&data);
        assert_eq!(
            pyrogate::push::gunzip_bounded(&gz, 1 << 20)
                .unwrap()
                .as_ref(),
            &data[..]
        );
        assert_eq!(
            pyrogate::push::gunzip_bounded(&gzip_stored(b""), 10)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn size_mixes_span_two_kilobytes_to_four_megabytes() {
        assert_eq!(Mix::All.size_at(0.0), 2 << 10);
        let top = Mix::All.size_at(0.9999);
        assert!(top > 4_100_000 && top <= MAX_PROFILE_BYTES, "{top}");
        assert_eq!(Mix::Go.size_at(0.0), 2 << 10);
        assert!(Mix::Go.size_at(0.9999) < 64 << 10);
        let pool = BodyPool::new(Mix::All, 50, 1, 5);
        let max = pool.templates.iter().map(|t| t.prefix.len()).max().unwrap();
        let min = pool.templates.iter().map(|t| t.prefix.len()).min().unwrap();
        assert!(max > 1 << 20, "{max}");
        assert!(min < 4 << 10, "{min}");
    }

    #[test]
    fn label_sets_are_distinct_and_escaped_like_go() {
        let sets = label_sets(500, 1);
        let names: std::collections::HashSet<String> =
            sets.iter().map(|l| l.ingest_name("cpu")).collect();
        assert_eq!(names.len(), 500);
        assert!(
            sets[0]
                .ingest_name("cpu")
                .starts_with("svc-0.cpu%7Benv%3Dproduction%2Cpod%3Dpod-0-")
        );
        let parsed =
            pyrogate::labels::parse("svc-0.cpu{env=production,pod=p,region=eu-west-1}").unwrap();
        assert_eq!(parsed.get("pod"), Some("p"));
    }

    #[test]
    fn prng_is_deterministic_per_seed() {
        let a: Vec<u64> = {
            let mut r = Prng::new(5);
            (0..3).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Prng::new(5);
            (0..3).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(Prng::new(6).next_u64(), a[0]);
    }
}
