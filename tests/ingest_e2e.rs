//! End-to-end: what reaches Pyroscope when SDKs upload through pyrogate (README, "Behaviour").
//!
//! Covers, under both drivers, with the real binary and in-process Pyroscope stand-ins that
//! enforce the name grammar:
//! - every SDK body shape (Go multipart, Node raw gzip pprof, Java JFR multipart, folded text)
//!   arrives byte-identical at every destination of a fan-out to two `pyroscope.write` blocks,
//!   with Alloy's rewritten and sorted query (external labels applied on one write only),
//!   `User-Agent: pyrogate/<version>`, the client's Content-Type, the endpoint `headers`, and
//!   no other client header;
//! - `forward_headers` passes the listed client headers (and only those);
//! - an endpoint URL with a path prefix is joined with the request path (`/ingest` and
//!   `/pyroscope/ingest`);
//! - a chunked upload is forwarded with a Content-Length and an identical body.

mod support;

use std::time::Duration;

use support::bodies::{self, NAME_RAW, Upload};
use support::client::{Client, chunked_upload_request};
use support::config;
use support::{Driver, Gateway, MockPyroscope, Recorded, both_drivers};

const WAIT: Duration = Duration::from_secs(20);

/// The client `name` (`myapp.cpu{env=staging,region=eu}`) after a write with
/// `external_labels = { env = "prod", cluster = "c1" }` (Alloy's worked example).
const NAME_WITH_EXTERNAL: &str =
    "myapp.cpu%7Bcluster%3Dc1%2Cenv%3Dprod%2Cregion%3Deu%2Cservice_name%3Dmyapp.cpu%7D";
/// The client `name` after a write without external labels.
const NAME_PLAIN: &str = "myapp.cpu%7Benv%3Dstaging%2Cregion%3Deu%2Cservice_name%3Dmyapp.cpu%7D";

/// The upstream query Alloy builds for each shape: all parameters kept, sorted by key,
/// `NAME` standing for the rewritten `name`.
fn expected_query(shape: &str, name: &str) -> String {
    let template = match shape {
        "go-multipart" => {
            "aggregationType=sum&from=1700000000000000000&name=NAME&sampleRate=100&spyName=gospy&units=samples&until=1700000015000000000"
        }
        "node-pprof" => {
            "format=pprof&from=1700000000&name=NAME&sampleRate=100&spyName=nodespy&until=1700000060"
        }
        "java-jfr" => {
            "aggregationType=sum&format=jfr&from=1700000000&name=NAME&sampleRate=100&spyName=javaspy&units=samples&until=1700000010"
        }
        "folded" => "from=1700000000&name=NAME&sampleRate=100&spyName=ebpfspy&until=1700000010",
        other => panic!("no expected query for shape {other}"),
    };
    template.replace("NAME", name)
}

fn user_agent() -> String {
    format!("pyrogate/{}", env!("CARGO_PKG_VERSION"))
}

/// Client headers an SDK sends that Alloy's rule (only Content-Type) must drop.
const CLIENT_EXTRA_HEADERS: &[(&str, &str)] = &[
    ("User-Agent", "Go-http-client/1.1"),
    ("X-Scope-OrgID", "tenant-1"),
    ("Authorization", "Basic dXNlcjpwYXNz"),
    ("Accept-Encoding", "gzip"),
    ("X-Custom-Client", "dropped"),
];

fn find_by_body<'a>(recorded: &'a [Recorded], upload: &Upload, dest: &str) -> &'a Recorded {
    let matches: Vec<&Recorded> = recorded.iter().filter(|r| r.body == upload.body).collect();
    assert_eq!(
        matches.len(),
        1,
        "{}: destination {dest} should hold the body exactly once (got {} of {} requests)",
        upload.shape,
        matches.len(),
        recorded.len()
    );
    matches[0]
}

/// Asserts one upstream request carries exactly the forwarded headers for `upload`.
fn assert_forwarded_headers(
    r: &Recorded,
    upload: &Upload,
    mock: &MockPyroscope,
    endpoint_header: (&str, &str),
) {
    let what = format!("{} at {}", upload.shape, mock.url());
    let mut want = vec![
        "content-length".to_string(),
        "host".to_string(),
        "user-agent".to_string(),
        endpoint_header.0.to_ascii_lowercase(),
    ];
    if upload.content_type.is_some() {
        want.push("content-type".into());
    }
    want.sort();
    assert_eq!(r.header_names(), want, "{what}: header set {:?}", r.headers);
    assert_eq!(
        r.header("host"),
        Some(mock.addr().to_string().as_str()),
        "{what}"
    );
    assert_eq!(
        r.header("user-agent"),
        Some(user_agent().as_str()),
        "{what}"
    );
    assert_eq!(
        r.header("content-length"),
        Some(upload.body.len().to_string().as_str()),
        "{what}"
    );
    assert_eq!(
        r.header("content-type"),
        upload.content_type.as_deref(),
        "{what}"
    );
    assert_eq!(
        r.header(endpoint_header.0),
        Some(endpoint_header.1),
        "{what}"
    );
    assert!(!r.chunked, "{what}: forwarded chunked");
}

fn fan_out_delivers_every_sdk_shape_byte_identical(driver: Driver) {
    let a = MockPyroscope::start();
    let b = MockPyroscope::start();
    let cfg = format!(
        "{}{}{}",
        config::receiver("default", &["a", "b"], "", ""),
        config::write(
            "a",
            &[config::endpoint(
                &a.url(),
                "    headers = { \"X-Destination\" = \"a\" }"
            )],
            "  external_labels = { env = \"prod\", cluster = \"c1\" }",
        ),
        config::write(
            "b",
            &[config::endpoint(
                &b.url(),
                "    headers = { \"X-Destination\" = \"b\" }"
            )],
            "",
        ),
    );
    let gw = Gateway::start(&cfg, driver, 2);
    let uploads = bodies::all_shapes(1000);
    for upload in &uploads {
        let mut client = Client::connect(gw.addr());
        client.send(&upload.request(CLIENT_EXTRA_HEADERS));
        let response = client.read_response();
        assert_eq!(response.status, 200, "{}: {response:?}", upload.shape);
        assert_eq!(response.body, b"", "{}", upload.shape);
        assert_eq!(
            response.header("content-length"),
            Some("0"),
            "{}",
            upload.shape
        );
    }
    let at_a = a.wait_for_requests(uploads.len(), WAIT);
    let at_b = b.wait_for_requests(uploads.len(), WAIT);
    assert_eq!(at_a.len(), uploads.len());
    assert_eq!(at_b.len(), uploads.len());
    for upload in &uploads {
        let ra = find_by_body(&at_a, upload, "a");
        assert_eq!(ra.method, "POST");
        assert_eq!(ra.path, "/ingest", "{}", upload.shape);
        assert_eq!(
            ra.query,
            expected_query(upload.shape, NAME_WITH_EXTERNAL),
            "{}",
            upload.shape
        );
        assert_eq!(ra.status, Some(200), "{}: Pyroscope rules", upload.shape);
        assert_forwarded_headers(ra, upload, &a, ("X-Destination", "a"));

        let rb = find_by_body(&at_b, upload, "b");
        assert_eq!(rb.path, "/ingest", "{}", upload.shape);
        assert_eq!(
            rb.query,
            expected_query(upload.shape, NAME_PLAIN),
            "{}",
            upload.shape
        );
        assert_eq!(rb.status, Some(200), "{}: Pyroscope rules", upload.shape);
        assert_forwarded_headers(rb, upload, &b, ("X-Destination", "b"));
    }
    // Sanity of the fixture itself: the client really sent the name the constants assume.
    assert!(uploads.iter().all(|u| u.query.contains(NAME_RAW)));
}

fn forward_headers_pass_only_the_listed_client_headers(driver: Driver) {
    let mock = MockPyroscope::start();
    let cfg = config::single(
        &mock.url(),
        "",
        "",
        "  forward_headers = [\"X-Scope-OrgID\"]",
    );
    let gw = Gateway::start(&cfg, driver, 1);
    let upload = bodies::node_pprof(2000);
    let mut client = Client::connect(gw.addr());
    client.send(&upload.request(CLIENT_EXTRA_HEADERS));
    assert_eq!(client.read_response().status, 200);
    let recorded = mock.wait_for_requests(1, WAIT);
    let r = &recorded[0];
    assert_eq!(r.body, upload.body);
    assert_eq!(r.header_all("x-scope-orgid"), ["tenant-1"]);
    assert_eq!(
        r.header_names(),
        [
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-scope-orgid"
        ]
    );
    assert_eq!(r.header("user-agent"), Some(user_agent().as_str()));
}

fn endpoint_path_prefix_is_joined_with_the_request_path(driver: Driver) {
    let mock = MockPyroscope::builder().path_prefix("/prefix").start();
    let cfg = config::single(&format!("{}/prefix/", mock.url()), "", "", "");
    let gw = Gateway::start(&cfg, driver, 1);
    let first = bodies::folded(3000);
    let second = bodies::folded(3001);
    let mut client = Client::connect(gw.addr());
    client.send(&first.request(&[]));
    assert_eq!(client.read_response().status, 200);
    let second_request = support::client::upload_request(
        &format!("/pyroscope/ingest?{}", second.query),
        &[],
        &second.body,
    );
    client.send(&second_request);
    assert_eq!(client.read_response().status, 200);
    let recorded = mock.wait_for_requests(2, WAIT);
    let r1 = find_by_body(&recorded, &first, "prefix");
    assert_eq!(r1.path, "/prefix/ingest");
    assert_eq!(r1.query, expected_query("folded", NAME_PLAIN));
    assert_eq!(r1.status, Some(200));
    let r2 = find_by_body(&recorded, &second, "prefix");
    assert_eq!(r2.path, "/prefix/pyroscope/ingest");
    assert_eq!(r2.query, expected_query("folded", NAME_PLAIN));
    assert_eq!(r2.status, Some(200));
}

fn chunked_upload_is_forwarded_with_content_length(driver: Driver) {
    let mock = MockPyroscope::start();
    let gw = Gateway::start(&config::single(&mock.url(), "", "", ""), driver, 1);
    let upload = bodies::go_multipart(4000, true);
    let content_type = upload.content_type.clone().expect("multipart content type");
    let mut client = Client::connect(gw.addr());
    client.send(&chunked_upload_request(
        &upload.target(),
        &[("Content-Type", &content_type)],
        &upload.body,
        700,
    ));
    let response = client.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    let recorded = mock.wait_for_requests(1, WAIT);
    let r = &recorded[0];
    assert!(
        !r.chunked,
        "forwarded with Transfer-Encoding: {:?}",
        r.headers
    );
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(
        r.header("content-length"),
        Some(upload.body.len().to_string().as_str())
    );
    assert_eq!(r.body, upload.body);
    assert_eq!(r.query, expected_query("go-multipart", NAME_PLAIN));
    assert_eq!(r.header("content-type"), Some(content_type.as_str()));
}

both_drivers!(
    fan_out_delivers_every_sdk_shape_byte_identical,
    forward_headers_pass_only_the_listed_client_headers,
    endpoint_path_prefix_is_joined_with_the_request_path,
    chunked_upload_is_forwarded_with_content_length,
);
