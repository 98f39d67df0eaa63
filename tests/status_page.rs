//! End-to-end: the admin listener's status page (`GET /`) and its data (`GET /-/status.json`).
//!
//! Covers, under both drivers (README, "Status page"), on a gateway with two cores whose
//! receiver `default` forwards through `pyroscope.relabel.tag` to two writers: `a` (a stand-in
//! answering 200) and `b` (a stand-in answering every request 400 with a body holding markup,
//! `<b id=injected>x&y</b>`), after `UPLOADS` uploads, one connection each:
//! - `/-/status.json` parses as JSON and holds the exact figures: A sent `UPLOADS` profiles
//!   and the sum of the body lengths in bytes, B dropped `UPLOADS`, nothing queued, queue
//!   capacity = `queue_capacity` × cores; B's last error is Alloy's failure message with the
//!   upstream's body, A has none;
//! - `/` is served as `text/html` with a content security policy that allows no external
//!   resource, and is never cached; as served (no script run) it holds the same counts, B's
//!   error escaped, and a `<noscript>` meta refresh;
//! - rendered in headless Chromium (Debian's `chromium`, installed by the test when missing)
//!   with a virtual time budget that covers several refresh periods, through a proxy that sends
//!   `MORE` uploads after the page loaded and before its script's first fetch, the DOM after
//!   the script ran shows (with `UPLOADS + MORE` counts, which only the script can write): the refresh indicator in its "live" state after at least two fetches;
//!   the component names and endpoint URLs of the pipeline; A's sent count and B's dropped
//!   count; B's last error as text (the upstream's markup escaped, no element injected) and
//!   its time; a delivery rate (which only the script computes); the process figures.
//!
//! - a destination that keeps retrying (503, unbounded retries) shows its latest failed attempt
//!   (`... (attempt N, retrying): ...`) as its last error before any final failure.
//!
//! Counters are final once a client has its answer (acknowledge = delivered waits for both
//! destinations), so nothing here polls.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::bodies;
use support::client::{Client, get};
use support::config;
use support::upstream::Handler;
use support::{Action, Driver, Gateway, MockPyroscope, both_drivers};

/// Uploads sent in each scenario, one connection each (so both cores get some).
const UPLOADS: usize = 8;
/// Cores the gateway runs.
const CORES: usize = 2;
/// `queue_capacity` of every endpoint.
const QUEUE_CAPACITY: usize = 64;
/// What B answers every request with.
const B_BODY: &str = "<b id=injected>x&y</b>";
/// Uploads sent while the page is open in Chromium.
const MORE: usize = 3;
/// Bound on one Chromium run.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(90);

/// Two stand-ins and a gateway that has sent `UPLOADS` uploads to both.
struct Scene {
    a: MockPyroscope,
    b: MockPyroscope,
    gw: Gateway,
    sent_bytes: usize,
}

fn scene(driver: Driver) -> Scene {
    let a = MockPyroscope::start();
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{B_BODY}",
        B_BODY.len()
    );
    let handler: Handler = Arc::new(move |_, _| Some(response.clone().into_bytes()));
    let b = MockPyroscope::builder().handler(handler).start();
    let endpoint = |url: &str| {
        format!("  endpoint {{\n    url = \"{url}\"\n    queue_capacity = {QUEUE_CAPACITY}\n  }}")
    };
    let config = format!(
        r#"pyroscope.receive_http "default" {{
  http {{
    listen_address = "127.0.0.1"
    listen_port    = 0
  }}
  forward_to = [pyroscope.relabel.tag.receiver]
}}
pyroscope.relabel "tag" {{
  forward_to = [pyroscope.write.a.receiver, pyroscope.write.b.receiver]
  rule {{
    action       = "replace"
    target_label = "env"
    replacement  = "status-test"
  }}
}}
pyroscope.write "a" {{
{}
}}
pyroscope.write "b" {{
{}
}}
"#,
        endpoint(&a.url()),
        endpoint(&b.url())
    );
    let gw = Gateway::start(&config, driver, CORES);
    let mut sent_bytes = 0;
    for i in 0..UPLOADS {
        let upload = bodies::folded(900 + i as u64);
        sent_bytes += upload.body.len();
        let mut client = Client::connect(gw.addr());
        client.send(&upload.request(&[("Connection", "close")]));
        let response = client.read_response();
        // The first upstream failure is the client's answer (Alloy's rule).
        assert_eq!(response.status, 400, "{response:?}");
    }
    assert_eq!(a.request_count(), UPLOADS);
    assert_eq!(b.request_count(), UPLOADS);
    Scene {
        a,
        b,
        gw,
        sent_bytes,
    }
}

/// Alloy's wording of B's final failure, as the gateway reports it.
fn b_error(scene: &Scene) -> String {
    format!(
        "failed to ingest to endpoint {} (0 retries): remote error: pyroscope write error: status=400 msg={B_BODY}",
        scene.b.url()
    )
}

fn status_json_reports_the_exact_figures_and_the_last_error(driver: Driver) {
    let s = scene(driver);
    let r = get(s.gw.admin(), "/-/status.json");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v: serde_json::Value = serde_json::from_str(&r.body_str()).expect("JSON");
    assert_eq!(v["cores"], CORES);
    let d = v["destinations"].as_array().expect("destinations");
    assert_eq!(d.len(), 2, "{v}");
    let capacity = QUEUE_CAPACITY * CORES;
    for (dest, writer, url) in [(&d[0], "a", s.a.url()), (&d[1], "b", s.b.url())] {
        assert_eq!(dest["component_id"], format!("pyroscope.write.{writer}"));
        assert_eq!(dest["endpoint"], url);
        assert_eq!(dest["queue_depth"], 0);
        assert_eq!(dest["queue_capacity"], capacity);
        assert_eq!(dest["inflight_profiles"], 0);
        assert_eq!(dest["retries"], 0);
    }
    assert_eq!(d[0]["sent_profiles"], UPLOADS);
    assert_eq!(d[0]["sent_bytes"], s.sent_bytes);
    assert_eq!(d[0]["dropped_profiles"], 0);
    assert_eq!(d[0]["last_error"], serde_json::Value::Null);
    assert_eq!(d[1]["sent_profiles"], 0);
    assert_eq!(d[1]["dropped_profiles"], UPLOADS);
    assert_eq!(d[1]["dropped_bytes"], s.sent_bytes);
    assert_eq!(d[1]["last_error"]["message"], b_error(&s));
    let at = d[1]["last_error"]["unix_ms"].as_u64().expect("error time");
    let now = v["now_unix_ms"].as_u64().expect("now");
    assert!(at <= now && now - at < 600_000, "error at {at}, now {now}");
    assert_eq!(v["text"]["dest.0.sent_profiles"], UPLOADS.to_string());
    assert_eq!(v["text"]["dest.1.error"], b_error(&s));
    assert_eq!(v["text"]["dest.0.queue"], format!("0 / {capacity}"));
    assert!(v["process"]["open_fds"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["process"]["resident_memory_bytes"].as_u64().unwrap() > 0,
        "{v}"
    );

    let page = get(s.gw.admin(), "/");
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        page.header("content-security-policy"),
        Some(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'"
        )
    );
    let html = page.body_str();
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{html}");
    assert!(
        html.contains("msg=&lt;b id=injected&gt;x&amp;y&lt;/b&gt;</td>"),
        "{html}"
    );
    assert!(!html.contains(B_BODY), "{html}");
    // Without a script the page as served carries the figures, and reloads itself.
    assert!(
        html.contains(&format!(
            "<td class=\"n\" data-k=\"dest.0.sent_profiles\">{UPLOADS}</td>"
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "<td class=\"n\" data-k=\"dest.1.dropped_profiles\">{UPLOADS}</td>"
        )),
        "{html}"
    );
    assert!(
        html.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"),
        "{html}"
    );
}

/// `/usr/bin/chromium`, installed with apt-get the first time (one installer at a time, under
/// an exclusive lock on a file in `target/`); `None` when it cannot be installed here.
fn chromium() -> Option<PathBuf> {
    let bin = Path::new("/usr/bin/chromium");
    if bin.exists() {
        return Some(bin.to_path_buf());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(&target).expect("target dir");
    let lock = std::fs::File::create(target.join("chromium-install.lock")).expect("lock file");
    lock.lock().expect("lock the installer");
    if bin.exists() {
        return Some(bin.to_path_buf());
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let install = ["install", "-y", "-q", "--no-install-recommends", "chromium"];
    let installed = apt(&install) || (apt(&["update", "-q"]) && apt(&install));
    if !installed {
        return None;
    }
    bin.exists().then(|| bin.to_path_buf())
}

/// The DOM Chromium holds after running `url`'s scripts for `budget_ms` of virtual time.
fn dump_dom(chromium: &Path, url: &str, budget_ms: u32) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHROMIUM_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait chromium") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium still running after {CHROMIUM_LIMIT:?}: {}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out.join().unwrap_or_default();
    let log = err.join().unwrap_or_default();
    assert!(status.success(), "chromium exited {status}: {log}");
    assert!(dom.contains("</html>"), "no DOM dumped: {log}\n{dom}");
    dom
}

/// The text of every element carrying `data-k="key"` (as serialised: still HTML-escaped).
fn texts(dom: &str, key: &str) -> Vec<String> {
    let attr = format!("data-k=\"{key}\"");
    dom.match_indices(&attr)
        .map(|(i, _)| {
            let rest = &dom[i..];
            let start = rest.find('>').expect("tag end") + 1;
            let end = rest[start..].find('<').expect("text end");
            rest[start..start + end].to_string()
        })
        .collect()
}

/// The one start tag that contains `needle`.
fn start_tag<'a>(dom: &'a str, needle: &str) -> &'a str {
    let at = dom
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {dom}"));
    let open = dom[..at].rfind('<').expect("tag start");
    let close = at + dom[at..].find('>').expect("tag end");
    &dom[open..=close]
}

/// A forwarding proxy in front of the admin listener that runs `before_first_json` once, before
/// it forwards the page's first `/-/status.json` fetch. Figures changed there can reach the DOM
/// only through the page's script. One thread per connection; stops with the test process.
fn admin_proxy(admin: SocketAddr, before_first_json: Box<dyn FnOnce() + Send>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let hook = Arc::new(Mutex::new(Some(before_first_json)));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let hook = Arc::clone(&hook);
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(CHROMIUM_LIMIT));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                if head.starts_with(b"GET /-/status.json")
                    && let Some(hook) = hook.lock().unwrap_or_else(|e| e.into_inner()).take()
                {
                    hook();
                }
                let Ok(mut upstream) = TcpStream::connect(admin) else {
                    return;
                };
                // The admin listener answers one request per connection and closes it.
                let _ = upstream.write_all(&head);
                let _ = std::io::copy(&mut upstream, &mut conn);
            });
        }
    });
    addr
}

fn chromium_shows_the_live_figures_after_the_script_ran(driver: Driver) {
    let Some(chromium) = chromium() else {
        println!("skipped: chromium is not installed and apt-get could not install it");
        return;
    };
    let s = scene(driver);
    // `MORE` uploads more once the page is loaded, before its script first fetches the figures:
    // the counts in the DOM are then ones only the script can have written.
    let gw_addr = s.gw.addr();
    let proxy = admin_proxy(
        s.gw.admin(),
        Box::new(move || {
            for i in 0..MORE {
                let mut client = Client::connect(gw_addr);
                client.send(&bodies::folded(950 + i as u64).request(&[("Connection", "close")]));
                assert_eq!(client.read_response().status, 400);
            }
        }),
    );
    // Five seconds of virtual time: the first fetch at load, then one every 2 s.
    let dom = dump_dom(&chromium, &format!("http://{proxy}/"), 5000);
    assert_eq!(s.a.request_count(), UPLOADS + MORE, "the proxy's hook ran");
    let total = UPLOADS + MORE;

    // The script ran and fetched at least twice.
    let live = start_tag(&dom, "id=\"live\"");
    assert!(live.contains("class=\"ok\""), "{live}");
    let fetches: u32 = live
        .split("data-fetches=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no fetch count in {live}"));
    assert!(fetches >= 2, "{live}");
    let updated = &texts(&dom, "updated")[0];
    assert!(updated.starts_with("live, updated 20"), "{updated}");

    // The pipeline, by name.
    for name in [
        "pyroscope.receive_http.default",
        "pyroscope.relabel.tag",
        "pyroscope.write.a",
        "pyroscope.write.b",
        &s.a.url(),
        &s.b.url(),
    ] {
        assert!(dom.contains(name), "{name} missing from\n{dom}");
    }
    assert_eq!(
        texts(&dom, "rl.0.counts"),
        [format!("{total} in, {total} out, 0 dropped")]
    );

    // Per destination: counts (in the pipeline and in the table), queue fill, rate, error.
    let n = total.to_string();
    assert_eq!(texts(&dom, "dest.0.sent_profiles"), [n.clone(), n.clone()]);
    assert_eq!(texts(&dom, "dest.1.sent_profiles"), ["0", "0"]);
    assert_eq!(texts(&dom, "dest.1.dropped_profiles"), [n]);
    let capacity = QUEUE_CAPACITY * CORES;
    assert_eq!(texts(&dom, "dest.0.queue"), [format!("0 / {capacity}")]);
    // Nothing is being sent any more: the rate the script computed is zero.
    assert_eq!(
        texts(&dom, "dest.0.rate"),
        ["0.00 profiles/s, 0 B/s".to_string()]
    );
    assert_eq!(texts(&dom, "dest.0.error"), ["none"]);
    let escaped = b_error(&s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert_eq!(texts(&dom, "dest.1.error"), [escaped]);
    assert!(
        !dom.contains("id=\"injected\"") && !dom.contains("<b id"),
        "{dom}"
    );
    let at = &texts(&dom, "dest.1.error_at")[0];
    assert!(at.starts_with("20") && at.ends_with('Z'), "{at}");
    assert!(
        start_tag(&dom, "id=\"dest-1\"").contains("class=\"err\""),
        "{dom}"
    );
    assert!(!start_tag(&dom, "id=\"dest-0\"").contains("err"), "{dom}");

    // The process figures.
    let fds = &texts(&dom, "process.fds")[0];
    let (open, max) = fds.split_once(" / ").expect("open / max");
    assert!(open.parse::<u64>().unwrap() > 0, "{fds}");
    assert!(max.parse::<u64>().unwrap() > 0, "{fds}");
    let rss = &texts(&dom, "process.rss")[0];
    assert!(rss.ends_with("MiB") || rss.ends_with("KiB"), "{rss}");
    assert!(texts(&dom, "process.uptime")[0].ends_with('s'), "{dom}");
}

/// A destination answering 503 with unbounded retries (acknowledge = "enqueued", so the
/// client has its answer at once) shows its latest failed attempt as the last error while it
/// keeps retrying: no final failure is needed for the page to say why it is not delivering.
fn a_retrying_destination_shows_its_latest_attempt_as_last_error(driver: Driver) {
    let mock = MockPyroscope::builder()
        .default_action(Action::status(503))
        .start();
    let url = mock.url();
    let gw = Gateway::start(
        &config::single(
            &url,
            "    max_backoff_retries = 0\n    min_backoff_period = \"10ms\"\n    max_backoff_period = \"20ms\"",
            "",
            "  acknowledge = \"enqueued\"",
        ),
        driver,
        1,
    );
    let mut client = Client::connect(gw.addr());
    client.send(&bodies::folded(77).request(&[]));
    assert_eq!(client.read_response().status, 200);
    // Retries happen in the background: a bounded poll until a few have been made.
    mock.wait_for_requests(3, Duration::from_secs(20));
    let v: serde_json::Value =
        serde_json::from_str(&get(gw.admin(), "/-/status.json").body_str()).expect("JSON");
    let d = &v["destinations"][0];
    assert_eq!(d["inflight_profiles"], 1, "{v}");
    assert_eq!(d["dropped_profiles"], 0, "{v}");
    let message = d["last_error"]["message"].as_str().expect("last error");
    let prefix = format!("failed to ingest to endpoint {url} (attempt ");
    let rest = message
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{message}"));
    let (attempt, cause) = rest.split_once(", retrying): ").expect("attempt count");
    assert!(attempt.parse::<u32>().unwrap() >= 2, "{message}");
    assert!(
        cause.starts_with("remote error: pyroscope write error: status=503 msg="),
        "{message}"
    );
}

both_drivers!(
    a_retrying_destination_shows_its_latest_attempt_as_last_error,
    status_json_reports_the_exact_figures_and_the_last_error,
    chromium_shows_the_live_figures_after_the_script_ran,
);
