//! Small builders for the Alloy-syntax configs the e2e tests feed to the gateway.
//!
//! Owns: text only — a `pyroscope.receive_http` block listening on `127.0.0.1:0`, a
//! `pyroscope.write` block, an `endpoint` block. Extra attributes are passed through verbatim so
//! each test states exactly the settings it depends on. Does not validate anything: the gateway
//! does.

/// A `pyroscope.receive_http "<label>"` block on `127.0.0.1:0` forwarding to the named
/// `pyroscope.write` blocks. `http_extra` goes inside `http { }`, `extra` after `forward_to`.
pub fn receiver(label: &str, forward_to: &[&str], http_extra: &str, extra: &str) -> String {
    let targets: Vec<String> = forward_to
        .iter()
        .map(|w| format!("pyroscope.write.{w}.receiver"))
        .collect();
    format!(
        "pyroscope.receive_http \"{label}\" {{\n  http {{\n    listen_address = \"127.0.0.1\"\n    listen_port    = 0\n{http_extra}\n  }}\n  forward_to = [{}]\n{extra}\n}}\n",
        targets.join(", ")
    )
}

/// A `pyroscope.write "<label>"` block with the given endpoint blocks and extra attributes.
pub fn write(label: &str, endpoints: &[String], extra: &str) -> String {
    format!(
        "pyroscope.write \"{label}\" {{\n{}\n{extra}\n}}\n",
        endpoints.join("\n")
    )
}

/// An `endpoint { url = "<url>" ... }` block.
pub fn endpoint(url: &str, extra: &str) -> String {
    format!("  endpoint {{\n    url = \"{url}\"\n{extra}\n  }}")
}

/// The simplest useful config: receiver `default` → write `upstream` → one endpoint.
pub fn single(url: &str, endpoint_extra: &str, http_extra: &str, receiver_extra: &str) -> String {
    format!(
        "{}{}",
        receiver("default", &["upstream"], http_extra, receiver_extra),
        write("upstream", &[endpoint(url, endpoint_extra)], "")
    )
}
