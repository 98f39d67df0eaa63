//! Realistic `/ingest` upload bodies, built in code, in the shapes real SDKs send, and the
//! seeded byte source every builder of the kit (and loadtest's body pool) draws from.
//!
//! Owns: the xorshift64* [`Prng`], fake pprof bytes, the multipart/form-data writer (RFC 7578),
//! and the Go SDK multipart (grafana/pyroscope-go `upstream/remote/remote.go`), Node raw-pprof
//! (grafana/pyroscope-nodejs), Java JFR multipart (grafana/pyroscope-java
//! `PyroscopeExporter.java`) and folded-text shapes. Does not own gzip ([`crate::gzip`]) nor
//! push bodies ([`crate::push`]). Payloads are not valid pprof/JFR (neither the gateway nor the
//! stand-in decodes them) but every body is byte-distinct per seed, so identity checks mean
//! something.

use crate::gzip::gzip_stored;

/// One upload as a client sends it: query string, Content-Type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Which SDK shape this is, for assertion messages.
    pub shape: &'static str,
    /// The raw query string after `/ingest?`.
    pub query: String,
    /// `None` when the SDK sends no Content-Type.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Upload {
    /// `/ingest?<query>`.
    pub fn target(&self) -> String {
        format!("/ingest?{}", self.query)
    }

    /// The upload as one HTTP/1.1 request with Content-Length, plus `extra` headers.
    pub fn request(&self, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(ct) = &self.content_type {
            headers.push(("Content-Type", ct));
        }
        headers.extend_from_slice(extra);
        crate::client::upload_request(&self.target(), &headers, &self.body)
    }
}

/// xorshift64*: deterministic, seedable, good enough for distinct payloads and fault draws.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match hi.checked_sub(lo) {
            Some(span) if span > 0 => lo + self.next_u64() % span,
            _ => lo,
        }
    }

    /// Appends `n` bytes to `out`.
    pub fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let end = out.len() + n;
        while out.len() < end {
            let word = self.next_u64().to_le_bytes();
            let take = (end - out.len()).min(8);
            out.extend_from_slice(&word[..take]);
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        self.fill(&mut out, n);
        out
    }

    /// `n_bytes` random bytes as lower-case hex.
    pub fn hex(&mut self, n_bytes: usize) -> String {
        self.bytes(n_bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Pseudo-pprof bytes: a protobuf-looking prefix then noise, `len` bytes long.
pub fn fake_pprof(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0x0a, 0x04, 0x08, 0x01, 0x10, 0x02];
    out.extend_from_slice(&Prng::new(seed).bytes(len.saturating_sub(out.len())));
    out.truncate(len);
    out
}

/// A multipart/form-data body; returns (content type, body).
pub fn multipart(boundary: &str, parts: &[(&str, &str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, filename, content_type, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n")
                .as_bytes(),
        );
        if let Some(ct) = content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The client `name` the e2e tests send (Alloy's worked example, §3.3).
pub const NAME_RAW: &str = "myapp.cpu%7Benv%3Dstaging%2Cregion%3Deu%7D";

/// Go SDK (pyroscope-go v1.4.2): multipart, 60-hex-char boundary, `profile` part
/// (`profile.pprof`, gzip'd pprof) and, for heap-like types, `sample_type_config`;
/// nanosecond `from`/`until`, no `format`.
pub fn go_multipart(seed: u64, with_sample_type_config: bool) -> Upload {
    let mut rng = Prng::new(seed ^ 0x60);
    let boundary = rng.hex(30);
    let profile = gzip_stored(&fake_pprof(seed, 3000));
    let config: &[u8] = br#"{"alloc_objects":{"units":"objects"},"alloc_space":{"units":"bytes"},"inuse_space":{"units":"bytes","aggregation":"average"},"inuse_objects":{"units":"objects","aggregation":"average"}}"#;
    let mut parts: Vec<(&str, &str, Option<&str>, &[u8])> = vec![(
        "profile",
        "profile.pprof",
        Some("application/octet-stream"),
        &profile,
    )];
    if with_sample_type_config {
        parts.push((
            "sample_type_config",
            "sample_type_config.json",
            Some("application/octet-stream"),
            config,
        ));
    }
    let (content_type, body) = multipart(&boundary, &parts);
    Upload {
        shape: "go-multipart",
        query: format!(
            "aggregationType=sum&from=1700000000000000000&name={NAME_RAW}&sampleRate=100&spyName=gospy&units=samples&until=1700000015000000000"
        ),
        content_type: Some(content_type),
        body,
    }
}

/// Node SDK (@pyroscope/nodejs 0.6.4): raw gzip pprof, `application/octet-stream`,
/// `format=pprof`, parameters in the SDK's own (unsorted) order.
pub fn node_pprof(seed: u64) -> Upload {
    Upload {
        shape: "node-pprof",
        query: format!(
            "format=pprof&from=1700000000&name={NAME_RAW}&spyName=nodespy&until=1700000060&sampleRate=100"
        ),
        content_type: Some("application/octet-stream".into()),
        body: gzip_stored(&fake_pprof(seed, 2000)),
    }
}

/// The start of a JFR chunk (magic `FLR\0`, major 2, minor 1), as the Java agent's
/// recordings begin.
pub const JFR_HEADER: &[u8] = b"FLR\0\x00\x02\x00\x01";

/// A multipart boundary as OkHttp makes it (a UUID: 8-4-4-4-12 hex), from `rng`.
pub fn okhttp_boundary(rng: &mut Prng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        rng.hex(4),
        rng.hex(2),
        rng.hex(2),
        rng.hex(2),
        rng.hex(6)
    )
}

/// Java agent (io.pyroscope:agent 2.9.1): OkHttp multipart with `jfr` and `labels` parts
/// (both gzip), `format=jfr`, parameters in the agent's order.
pub fn java_jfr(seed: u64) -> Upload {
    let mut rng = Prng::new(seed ^ 0x1a);
    let boundary = okhttp_boundary(&mut rng);
    let mut jfr = JFR_HEADER.to_vec();
    jfr.extend_from_slice(&Prng::new(seed).bytes(5000));
    let jfr = gzip_stored(&jfr);
    let labels = gzip_stored(&Prng::new(seed ^ 0x1abe1).bytes(300));
    let (content_type, body) = multipart(
        &boundary,
        &[
            ("jfr", "jfr", Some("application/octet-stream"), &jfr),
            ("labels", "labels", Some("application/x-protobuf"), &labels),
        ],
    );
    Upload {
        shape: "java-jfr",
        query: format!(
            "name={NAME_RAW}&units=samples&aggregationType=sum&from=1700000000&until=1700000010&spyName=javaspy&sampleRate=100&format=jfr"
        ),
        content_type: Some(content_type),
        body,
    }
}

/// Folded text (old agents, curl): `a;b;c 10` lines, no Content-Type, no `format`.
pub fn folded(seed: u64) -> Upload {
    let mut rng = Prng::new(seed ^ 0xf0);
    let mut body = String::new();
    for i in 0..40 {
        body.push_str(&format!(
            "main;handler_{};work_{:x} {}\n",
            i % 7,
            rng.next_u64() & 0xffff,
            1 + rng.next_u64() % 500
        ));
    }
    Upload {
        shape: "folded",
        query: format!(
            "name={NAME_RAW}&from=1700000000&until=1700000010&sampleRate=100&spyName=ebpfspy"
        ),
        content_type: None,
        body: body.into_bytes(),
    }
}

/// A raw-pprof upload (Node SDK shape, no gzip) whose body is exactly `len` bytes, for tests
/// of size limits.
pub fn pprof_of_len(seed: u64, len: usize) -> Upload {
    Upload {
        shape: "pprof-of-len",
        query: format!("format=pprof&from=1700000000&name={NAME_RAW}&until=1700000060"),
        content_type: Some("application/octet-stream".into()),
        body: fake_pprof(seed, len),
    }
}

/// One body of each SDK shape, distinct from each other.
pub fn all_shapes(seed: u64) -> Vec<Upload> {
    vec![
        go_multipart(seed, true),
        node_pprof(seed + 1),
        java_jfr(seed + 2),
        folded(seed + 3),
    ]
}
