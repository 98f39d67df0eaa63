//! Realistic `/ingest` upload bodies, built in code, in the shapes real SDKs send
//! (grafana/pyroscope `pkg/ingester/pyroscope/ingest_handler.go`, `readInputRawDataFromRequest`;
//! pyroscope-go `upstream/remote/remote.go`; pyroscope-java `PyroscopeExporter.java`).
//!
//! Owns: a seeded pseudo-random byte source, a minimal gzip encoder (stored deflate blocks,
//! RFC 1951 §3.2.4 + RFC 1952, enough for the `1f 8b` magic Pyroscope sniffs), and the Go SDK
//! multipart, Node raw-pprof, Java JFR multipart and folded-text shapes. Payloads are not valid
//! pprof/JFR (neither the gateway nor the mock decodes them) but every body is byte-distinct
//! per seed, so identity checks mean something.

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
        super::client::upload_request(&self.target(), &headers, &self.body)
    }
}

/// xorshift64*: deterministic, seedable, good enough for distinct payloads.
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

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

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

/// CRC-32 (IEEE, reflected, as gzip uses it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A valid gzip member holding `data` in stored (uncompressed) deflate blocks.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    // RFC 1952 header: magic, CM=8 (deflate), no flags, mtime 0, XFL 0, OS 255 (unknown).
    let mut out = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];
    let mut blocks = data.chunks(u16::MAX as usize).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        out.push(u8::from(last)); // BFINAL, BTYPE=00 (stored)
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
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

/// Java agent (io.pyroscope:agent 2.9.1): OkHttp multipart with `jfr` and `labels` parts
/// (both gzip), `format=jfr`, parameters in the agent's order.
pub fn java_jfr(seed: u64) -> Upload {
    let mut rng = Prng::new(seed ^ 0x1a);
    // OkHttp boundaries are UUIDs.
    let boundary = format!(
        "{}-{}-{}-{}-{}",
        rng.hex(4),
        rng.hex(2),
        rng.hex(2),
        rng.hex(2),
        rng.hex(6)
    );
    let mut jfr = b"FLR\0\x00\x02\x00\x01".to_vec();
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

/// Go's `url.QueryEscape` (space as `+`, unreserved `A-Za-z0-9-_.~` kept, the rest `%XX`).
pub fn go_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
