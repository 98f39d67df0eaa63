//! The admin listener's status page (`GET /`) and the data it refreshes from
//! (`GET /-/status.json`).
//!
//! Owns: rendering a [`Status`] (the running configuration, one merged metrics snapshot and
//! the process figures) as one self-contained HTML page — inline CSS and script, no external
//! asset — and as the JSON the page's script fetches every [`REFRESH_MS`] to update itself in
//! place; HTML and JSON escaping. Every live figure is an element carrying `data-k="KEY"`, and
//! the JSON's `text` object maps each KEY to the same text the HTML shows, so both renderings
//! come from one formatter. Delivery rates are the one figure the script computes itself (the
//! change in sent counts between two fetches); without a script the page reloads itself every
//! [`NOSCRIPT_REFRESH_S`] seconds and shows "—" for rates. Pure: values in, bytes out; no
//! I/O and no clock (the caller passes "now"). Does not own: gathering snapshots or serving
//! HTTP (`admin`), the counters (`metrics`).

use std::fmt::Write as _;

use crate::config::{Config, Target};
use crate::metrics::{CoreSnapshot, DestSnapshot, Process};

/// How often the page's script fetches `/-/status.json`, in milliseconds.
pub const REFRESH_MS: u32 = 2000;
/// How often the page reloads itself when scripts are off (`<noscript>` meta refresh).
pub const NOSCRIPT_REFRESH_S: u32 = 5;
/// Where the page's script fetches its data.
pub const JSON_PATH: &str = "/-/status.json";

/// Everything one rendering shows.
#[derive(Debug, Clone, Copy)]
pub struct Status<'a> {
    pub config: &'a Config,
    /// Merged over every core; destinations, receivers and relabels in config order.
    pub snapshot: &'a CoreSnapshot,
    pub process: &'a Process,
    /// Core threads running: each has its own queue per destination.
    pub cores: usize,
    /// Wall-clock time of the rendering, milliseconds since the Unix epoch.
    pub now_unix_ms: u64,
}

/// One destination in config order (writer order, then endpoint order), as the cores index
/// theirs.
struct Dest<'a> {
    writer: &'a str,
    url: &'a str,
    /// Queue capacity summed over the cores.
    capacity: u64,
    snap: Option<&'a DestSnapshot>,
}

impl<'a> Status<'a> {
    fn dests(&self) -> Vec<Dest<'a>> {
        let cores = self.cores.max(1) as u64;
        self.config
            .writers
            .iter()
            .flat_map(|w| w.endpoints.iter().map(move |e| (w, e)))
            .enumerate()
            .map(|(i, (w, e))| Dest {
                writer: &w.label,
                url: &e.url_text,
                capacity: e.queue_capacity as u64 * cores,
                snap: self.snapshot.dests.get(i),
            })
            .collect()
    }

    /// Index of writer `w`'s first destination.
    fn first_dest_of(&self, w: usize) -> usize {
        self.config.writers[..w]
            .iter()
            .map(|w| w.endpoints.len())
            .sum()
    }

    /// Every live figure as `(key, text)`: the page's `data-k` elements and the JSON's `text`.
    fn texts(&self) -> Vec<(String, String)> {
        let mut t = Vec::new();
        let p = self.process;
        t.push(("process.rss".into(), bytes(p.resident_bytes as f64)));
        t.push(("process.cpu".into(), format!("{:.2} s", p.cpu_seconds)));
        t.push((
            "process.fds".into(),
            format!("{} / {}", p.open_fds, p.max_fds),
        ));
        t.push(("process.uptime".into(), self.uptime()));
        t.push((
            "process.inflight_bytes".into(),
            bytes(self.snapshot.inflight_bytes as f64),
        ));
        t.push((
            "updated".into(),
            format!("rendered {}", iso_time(self.now_unix_ms)),
        ));
        for (i, d) in self.dests().iter().enumerate() {
            let s = d.snap;
            let n = |f: fn(&DestSnapshot) -> u64| s.map_or(0, f);
            t.push((
                format!("dest.{i}.queue"),
                format!("{} / {}", n(|s| s.queue_depth), d.capacity),
            ));
            t.push((
                format!("dest.{i}.sent_profiles"),
                n(|s| s.sent_profiles).to_string(),
            ));
            t.push((
                format!("dest.{i}.sent_bytes"),
                bytes(n(|s| s.sent_bytes) as f64),
            ));
            t.push((
                format!("dest.{i}.dropped_profiles"),
                n(|s| s.dropped_profiles).to_string(),
            ));
            t.push((format!("dest.{i}.retries"), n(|s| s.retries).to_string()));
            t.push((
                format!("dest.{i}.inflight"),
                n(|s| s.pending_profiles).to_string(),
            ));
            let err = s.and_then(|s| s.last_error.as_ref());
            t.push((
                format!("dest.{i}.error"),
                err.map_or_else(|| "none".to_string(), |e| e.message.clone()),
            ));
            t.push((
                format!("dest.{i}.error_at"),
                err.map_or_else(|| "—".to_string(), |e| iso_time(e.unix_ms)),
            ));
        }
        for (i, r) in self.config.receivers.iter().enumerate() {
            let snap = self.snapshot.receivers.get(i);
            t.push((
                format!("rx.{i}.connections"),
                format!(
                    "{} conn{}",
                    snap.map_or(0, |s| s.connections),
                    if r.http.conn_limit > 0 {
                        format!(" (limit {})", r.http.conn_limit)
                    } else {
                        String::new()
                    }
                ),
            ));
            t.push((
                format!("rx.{i}.requests"),
                format!(
                    "{} req",
                    snap.map_or(0, |s| s.requests.values().sum::<u64>())
                ),
            ));
        }
        for i in 0..self.config.relabels.len() {
            let s = self.snapshot.relabels.get(i).copied().unwrap_or_default();
            t.push((
                format!("rl.{i}.counts"),
                format!(
                    "{} in, {} out, {} dropped",
                    s.processed, s.written, s.dropped
                ),
            ));
        }
        t
    }

    fn uptime(&self) -> String {
        let start_ms = self.process.start_time_seconds * 1000.0;
        if start_ms <= 0.0 || start_ms > self.now_unix_ms as f64 {
            return "—".into();
        }
        duration((self.now_unix_ms as f64 - start_ms) / 1000.0)
    }
}

/// `1536.0` → `1.5 KiB` (binary units, one decimal above bytes).
fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024.0 {
        return format!("{n:.0} B");
    }
    let mut v = n;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// Whole seconds as `2d 3h 4m 5s`, leading zero units left out.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (v, u) in [(d, "d"), (h, "h"), (m, "m")] {
        if v > 0 || !out.is_empty() {
            let _ = write!(out, "{v}{u} ");
        }
    }
    let _ = write!(out, "{s}s");
    out
}

/// Milliseconds since the epoch as `2026-12-03T05:37:42.123Z`, the form JavaScript's
/// `Date.prototype.toISOString` writes (the date from [`crate::logging::civil_from_days`]).
fn iso_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let tod = secs % 86_400;
    let (year, month, day) = crate::logging::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        tod / 3600,
        tod / 60 % 60,
        tod % 60,
        unix_ms % 1000
    )
}

/// Appends `s` with the five characters HTML gives meaning to escaped, so text can go in an
/// element or a quoted attribute value (HTML Living Standard, "Escaping a string").
pub fn escape_html(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Appends `s` as a JSON string literal (RFC 8259 §7). `<`, `>` and `&` are written as
/// `\u00XX` too, and U+2028/U+2029, so the text stays inert even inside a `<script>` element.
pub fn escape_json(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number for an `f64` (JSON has no NaN or infinity: those become 0).
fn json_f64(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        "0".into()
    }
}

/// The page's data: raw figures for programs, and `text`, each `data-k` key's display text.
pub fn render_json(status: &Status<'_>) -> String {
    let mut o = String::with_capacity(2048);
    let p = status.process;
    let _ = write!(
        o,
        "{{\"now_unix_ms\":{},\"cores\":{},\"process\":{{\"resident_memory_bytes\":{},\"cpu_seconds\":{},\"open_fds\":{},\"max_fds\":{},\"start_time_seconds\":{}}},\"inflight_bytes\":{},\"destinations\":[",
        status.now_unix_ms,
        status.cores,
        p.resident_bytes,
        json_f64(p.cpu_seconds),
        p.open_fds,
        p.max_fds,
        json_f64(p.start_time_seconds),
        status.snapshot.inflight_bytes,
    );
    for (i, d) in status.dests().iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let n = |f: fn(&DestSnapshot) -> u64| d.snap.map_or(0, f);
        o.push_str("{\"component_id\":");
        escape_json(&format!("pyroscope.write.{}", d.writer), &mut o);
        o.push_str(",\"endpoint\":");
        escape_json(d.url, &mut o);
        let _ = write!(
            o,
            ",\"queue_depth\":{},\"queue_capacity\":{},\"sent_profiles\":{},\"sent_bytes\":{},\"dropped_profiles\":{},\"dropped_bytes\":{},\"retries\":{},\"inflight_profiles\":{},\"last_error\":",
            n(|s| s.queue_depth),
            d.capacity,
            n(|s| s.sent_profiles),
            n(|s| s.sent_bytes),
            n(|s| s.dropped_profiles),
            n(|s| s.dropped_bytes),
            n(|s| s.retries),
            n(|s| s.pending_profiles),
        );
        match d.snap.and_then(|s| s.last_error.as_ref()) {
            Some(e) => {
                o.push_str("{\"message\":");
                escape_json(&e.message, &mut o);
                let _ = write!(o, ",\"unix_ms\":{}}}", e.unix_ms);
            }
            None => o.push_str("null"),
        }
        o.push('}');
    }
    o.push_str("],\"text\":{");
    for (i, (k, v)) in status.texts().iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        escape_json(k, &mut o);
        o.push(':');
        escape_json(v, &mut o);
    }
    o.push_str("}}");
    o
}

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2329;background:#fafbfc}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .5em}\
#live{font-size:.9em;color:#6b7580}#live.ok{color:#1a7f37}#live.bad{color:#cf222e}\
table{border-collapse:collapse;background:#fff}\
td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f0f3f6}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.t{white-space:nowrap}\
code{font:12px ui-monospace,monospace}\
ul.flow,ul.flow ul{list-style:none;margin:0;padding-left:1.4em}ul.flow{padding-left:0}\
ul.flow li{margin:.25em 0}ul.flow ul>li:before{content:'\\2192\\00a0';color:#6b7580}\
.c{display:inline-block;padding:.1em .5em;border-radius:4px;border:1px solid #d0d7de;background:#fff}\
.rx{border-color:#0969da}.rl{border-color:#8250df}.wr{border-color:#1a7f37}.ep{border-color:#6b7580}\
.m{color:#6b7580;font-size:.9em;margin-left:.4em}\
.bar{width:8em;height:.6em;background:#eaeef2;border-radius:3px;overflow:hidden;margin-top:.2em}\
.bar div{height:100%;background:#0969da}\
tr.err td.e{color:#cf222e}td.e{max-width:40em;word-break:break-word}";

/// The page's script: fetch [`JSON_PATH`], write every `text` entry into the elements with
/// that `data-k`, redraw the queue bars, compute rates from the previous fetch.
const SCRIPT: &str = r#"(function(){
var prev=null,fetches=0,live=document.getElementById('live');
function set(k,t){var es=document.querySelectorAll('[data-k="'+k+'"]');for(var i=0;i<es.length;i++){if(es[i].textContent!==t)es[i].textContent=t;}}
function bytes(n){var u=['B','KiB','MiB','GiB','TiB'],i=0;while(n>=1024&&i<u.length-1){n/=1024;i++;}return (i?n.toFixed(1):n.toFixed(0))+' '+u[i];}
function tick(){fetch(JSON_PATH,{cache:'no-store'}).then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.json();}).then(function(s){
var now=Date.now();fetches++;
for(var k in s.text)set(k,s.text[k]);
s.destinations.forEach(function(d,i){
var b=document.querySelector('[data-bar="'+i+'"]');if(b)b.style.width=(d.queue_capacity?Math.min(100,100*d.queue_depth/d.queue_capacity):0)+'%';
var row=document.querySelector('[data-row="'+i+'"]');if(row)row.className=d.last_error?'err':'';
if(prev&&prev.s.destinations[i]){var dt=(now-prev.at)/1000,p=prev.s.destinations[i];if(dt>0)set('dest.'+i+'.rate',((d.sent_profiles-p.sent_profiles)/dt).toFixed(2)+' profiles/s, '+bytes(Math.max(0,d.sent_bytes-p.sent_bytes)/dt)+'/s');}
});
prev={s:s,at:now};
live.className='ok';live.setAttribute('data-fetches',String(fetches));live.textContent='live, updated '+new Date(s.now_unix_ms).toISOString();
}).catch(function(e){live.className='bad';live.textContent='refresh failed: '+e.message;});}
tick();setInterval(tick,REFRESH_MS);
})();"#;

/// The whole status page.
pub fn render_html(status: &Status<'_>) -> String {
    let texts = status.texts();
    // `v(key)`: the element showing one live figure, holding its current text.
    let v = |out: &mut String, tag: &str, class: &str, key: &str| {
        let text = texts
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, t)| t.as_str());
        let _ = write!(out, "<{tag}");
        if !class.is_empty() {
            let _ = write!(out, " class=\"{class}\"");
        }
        out.push_str(" data-k=\"");
        escape_html(key, out);
        out.push_str("\">");
        escape_html(text, out);
        let _ = write!(out, "</{tag}>");
    };
    let mut o = String::with_capacity(8192);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = write!(
        o,
        "<noscript><meta http-equiv=\"refresh\" content=\"{NOSCRIPT_REFRESH_S}\"></noscript>"
    );
    o.push_str("<title>pyrogate status</title><style>");
    o.push_str(STYLE);
    o.push_str("</style></head><body>\n");
    let _ = write!(
        o,
        "<h1>pyrogate <span class=\"m\">{}</span></h1>",
        env!("CARGO_PKG_VERSION")
    );
    o.push_str("<div id=\"live\" data-k=\"updated\">");
    escape_html(
        texts
            .iter()
            .find(|(k, _)| k == "updated")
            .map_or("", |(_, t)| t),
        &mut o,
    );
    o.push_str("</div>\n");

    // Process figures.
    o.push_str("<h2>Process</h2><table id=\"process\"><tr><th>Resident memory</th><th>CPU time</th><th>Open fds / limit</th><th>Uptime</th><th>Body bytes held</th><th>Cores</th></tr><tr>");
    for key in [
        "process.rss",
        "process.cpu",
        "process.fds",
        "process.uptime",
        "process.inflight_bytes",
    ] {
        v(&mut o, "td", "n", key);
    }
    let _ = writeln!(o, "<td class=\"n\">{}</td></tr></table>", status.cores);

    // The pipeline, one tree per receiver.
    o.push_str("<h2>Pipeline</h2><ul class=\"flow\" id=\"pipeline\">");
    for (i, r) in status.config.receivers.iter().enumerate() {
        o.push_str("<li><span class=\"c rx\">pyroscope.receive_http.");
        escape_html(&r.label, &mut o);
        o.push_str("</span><span class=\"m\">");
        escape_html(&r.http.listen.to_string(), &mut o);
        o.push_str("</span>");
        v(&mut o, "span", "m", &format!("rx.{i}.connections"));
        v(&mut o, "span", "m", &format!("rx.{i}.requests"));
        targets(status, &r.forward_to, &v, &mut o);
        o.push_str("</li>");
    }
    o.push_str("</ul>\n");

    // Destinations.
    o.push_str("<h2>Destinations</h2><table id=\"destinations\"><tr><th>Writer</th><th>Endpoint</th><th>Queue (all cores)</th><th>Delivery rate</th><th>Sent profiles</th><th>Sent bytes</th><th>Dropped profiles</th><th>Retries</th><th>In flight</th><th>Last error</th><th>Error time (UTC)</th></tr>");
    for (i, d) in status.dests().iter().enumerate() {
        let failed = d.snap.is_some_and(|s| s.last_error.is_some());
        let _ = write!(
            o,
            "<tr id=\"dest-{i}\" data-row=\"{i}\"{}><td><code>pyroscope.write.",
            if failed { " class=\"err\"" } else { "" }
        );
        escape_html(d.writer, &mut o);
        o.push_str("</code></td><td><code>");
        escape_html(d.url, &mut o);
        o.push_str("</code></td><td class=\"n\">");
        v(&mut o, "span", "", &format!("dest.{i}.queue"));
        let depth = d.snap.map_or(0, |s| s.queue_depth);
        let pct = if d.capacity == 0 {
            0.0
        } else {
            (100.0 * depth as f64 / d.capacity as f64).min(100.0)
        };
        let _ = write!(
            o,
            "<div class=\"bar\"><div data-bar=\"{i}\" style=\"width:{pct:.1}%\"></div></div></td>"
        );
        let _ = write!(
            o,
            "<td class=\"n\" data-k=\"dest.{i}.rate\" title=\"computed by the page's script from successive refreshes\">—</td>"
        );
        for f in [
            "sent_profiles",
            "sent_bytes",
            "dropped_profiles",
            "retries",
            "inflight",
        ] {
            v(&mut o, "td", "n", &format!("dest.{i}.{f}"));
        }
        v(&mut o, "td", "e", &format!("dest.{i}.error"));
        v(&mut o, "td", "t", &format!("dest.{i}.error_at"));
        o.push_str("</tr>");
    }
    o.push_str("</table>\n<script>");
    let mut script = SCRIPT.replace("REFRESH_MS", &REFRESH_MS.to_string());
    let mut path = String::new();
    escape_json(JSON_PATH, &mut path);
    script = script.replace("JSON_PATH", &path);
    o.push_str(&script);
    o.push_str("</script></body></html>\n");
    o
}

/// The `forward_to` targets of a receiver or relabel component, as a nested list.
fn targets(
    status: &Status<'_>,
    to: &[Target],
    v: &dyn Fn(&mut String, &str, &str, &str),
    o: &mut String,
) {
    if to.is_empty() {
        return;
    }
    o.push_str("<ul>");
    for &t in to {
        o.push_str("<li>");
        match t {
            Target::Relabel(r) => {
                let rl = &status.config.relabels[r];
                o.push_str("<span class=\"c rl\">pyroscope.relabel.");
                escape_html(&rl.label, o);
                let n = rl.rules.len();
                let plural = if n == 1 { "" } else { "s" };
                let _ = write!(o, "</span><span class=\"m\">{n} rule{plural}</span>");
                v(o, "span", "m", &format!("rl.{r}.counts"));
                targets(status, &rl.forward_to, v, o);
            }
            Target::Writer(w) => {
                let wr = &status.config.writers[w];
                o.push_str("<span class=\"c wr\">pyroscope.write.");
                escape_html(&wr.label, o);
                o.push_str("</span><ul>");
                let first = status.first_dest_of(w);
                for (j, e) in wr.endpoints.iter().enumerate() {
                    let _ = write!(
                        o,
                        "<li><a class=\"c ep\" href=\"#dest-{}\"><code>",
                        first + j
                    );
                    escape_html(&e.url_text, o);
                    o.push_str("</code></a>");
                    v(o, "span", "m", &format!("dest.{}.sent_profiles", first + j));
                    o.push_str("<span class=\"m\">sent</span></li>");
                }
                o.push_str("</ul>");
            }
        }
        o.push_str("</li>");
    }
    o.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProcessEnvironment, load_str};
    use crate::metrics::{DestMetrics, ReceiverMetrics, RelabelMetrics};

    const CONFIG: &str = r#"
pyroscope.receive_http "front" {
  http {
    listen_address = "127.0.0.1"
    listen_port    = 0
  }
  forward_to = [pyroscope.relabel.clean.receiver]
}
pyroscope.relabel "clean" {
  forward_to = [pyroscope.write.a.receiver, pyroscope.write.b.receiver]
  rule {
    action       = "replace"
    target_label = "env"
    replacement  = "prod"
  }
}
pyroscope.write "a" {
  endpoint {
    url            = "http://a.example:4040"
    queue_capacity = 10
  }
}
pyroscope.write "b" {
  endpoint {
    url = "http://b.example:4040"
  }
  endpoint {
    url = "http://c.example:4040/p?x=1&y=2"
  }
}
"#;

    fn config() -> Config {
        load_str("t.alloy", CONFIG, &ProcessEnvironment)
            .expect("valid test config")
            .config
    }

    /// Two cores' worth of metrics: destination 0 sent 3 profiles, destination 1 failed on
    /// both cores (the later error wins), destination 2 untouched.
    fn snapshot(config: &Config) -> CoreSnapshot {
        let core = |sent: u64, error: Option<&str>| {
            let dests: Vec<DestMetrics> = (0..3).map(|_| DestMetrics::default()).collect();
            dests[0].record_accepted(sent);
            dests[0].record_sent(100 * sent, sent, std::time::Duration::from_millis(5));
            if let Some(e) = error {
                dests[1].record_error(format_args!("{e}"));
            }
            let rx: Vec<ReceiverMetrics> = config
                .receivers
                .iter()
                .map(|_| Default::default())
                .collect();
            rx[0].record_request("ingest", 200);
            let rl: Vec<RelabelMetrics> =
                config.relabels.iter().map(|_| Default::default()).collect();
            rl[0].record(true);
            CoreSnapshot::capture(dests.iter().map(|d| (d, 2)), rx.iter(), rl.iter(), 0)
        };
        let mut merged = CoreSnapshot::default();
        merged.merge(&core(1, Some("first")));
        std::thread::sleep(std::time::Duration::from_millis(2));
        merged.merge(&core(2, Some("failed to ingest to endpoint http://b.example:4040 (0 retries): msg=<img src=x onerror=alert(1)> & \"q\"")));
        merged
    }

    fn process() -> Process {
        Process {
            cpu_seconds: 1.5,
            resident_bytes: 3 * 1024 * 1024,
            virtual_bytes: 0,
            open_fds: 17,
            max_fds: 1024,
            start_time_seconds: 1_796_276_000.0,
        }
    }

    fn with_status<R>(f: impl FnOnce(&Status<'_>) -> R) -> R {
        let config = config();
        let snap = snapshot(&config);
        let process = process();
        f(&Status {
            config: &config,
            snapshot: &snap,
            process: &process,
            cores: 2,
            now_unix_ms: 1_796_276_262_123,
        })
    }

    #[test]
    fn html_escaping_covers_the_five_special_characters() {
        let mut out = String::new();
        escape_html(r#"<a href="x" title='y'>&amp;</a>"#, &mut out);
        assert_eq!(
            out,
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn json_escaping_is_valid_json_and_inert_in_a_script_element() {
        let raw = "q\"b\\s\n\t\u{1}</script>&\u{2028}é";
        let mut out = String::new();
        escape_json(raw, &mut out);
        assert_eq!(
            out,
            r#""q\"b\\s\n\t\u0001\u003c/script\u003e\u0026\u2028é""#
        );
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn times_are_written_as_javascript_iso_strings() {
        for (ms, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_786_123_004, "2000-02-29T01:02:03.004Z"),
            (1_796_276_262_123, "2026-12-03T05:37:42.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(iso_time(ms), want);
        }
    }

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
        assert_eq!(duration(5.9), "5s");
        assert_eq!(duration(3600.0), "1h 0m 0s");
        assert_eq!(duration(2.0 * 86_400.0 + 61.0), "2d 0h 1m 1s");
    }

    #[test]
    fn the_error_text_is_escaped_in_the_page_and_in_the_json() {
        let (html, json) = with_status(|s| (render_html(s), render_json(s)));
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("msg=&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;</td>"),
            "{html}"
        );
        assert!(!json.contains('<'), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["destinations"][1]["last_error"]["message"],
            "failed to ingest to endpoint http://b.example:4040 (0 retries): msg=<img src=x onerror=alert(1)> & \"q\""
        );
        assert_eq!(v["destinations"][0]["last_error"], serde_json::Value::Null);
    }

    #[test]
    fn json_carries_the_merged_figures_and_the_display_text_of_every_key() {
        let json = with_status(render_json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["now_unix_ms"], 1_796_276_262_123u64);
        assert_eq!(v["cores"], 2);
        assert_eq!(v["process"]["open_fds"], 17);
        let d = &v["destinations"];
        assert_eq!(d.as_array().unwrap().len(), 3);
        assert_eq!(d[0]["component_id"], "pyroscope.write.a");
        assert_eq!(d[0]["endpoint"], "http://a.example:4040");
        assert_eq!(d[0]["sent_profiles"], 3);
        assert_eq!(d[0]["sent_bytes"], 300);
        assert_eq!(d[0]["queue_depth"], 4);
        assert_eq!(d[0]["queue_capacity"], 20, "10 per core, two cores");
        assert_eq!(d[2]["endpoint"], "http://c.example:4040/p?x=1&y=2");
        let t = &v["text"];
        assert_eq!(t["dest.0.queue"], "4 / 20");
        assert_eq!(t["dest.0.sent_profiles"], "3");
        assert_eq!(t["dest.0.sent_bytes"], "300 B");
        assert_eq!(t["dest.0.error"], "none");
        assert_eq!(t["dest.0.error_at"], "—");
        assert!(
            t["dest.1.error_at"].as_str().unwrap().ends_with('Z'),
            "{}",
            t["dest.1.error_at"]
        );
        assert_eq!(t["process.rss"], "3.0 MiB");
        assert_eq!(t["process.cpu"], "1.50 s");
        assert_eq!(t["process.fds"], "17 / 1024");
        assert_eq!(t["process.uptime"], "4m 22s");
        assert_eq!(t["rx.0.requests"], "2 req");
        assert_eq!(t["rl.0.counts"], "2 in, 2 out, 0 dropped");
        assert_eq!(t["updated"], "rendered 2026-12-03T05:37:42.123Z");
        // Every key the JSON updates has an element on the page, and the other way round
        // (apart from the rates, which the script computes).
        let html = with_status(render_html);
        let body = &html[..html.find("<script>").unwrap()];
        let mut page_keys: Vec<&str> = body
            .split("data-k=\"")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
            .filter(|k| !k.ends_with(".rate"))
            .collect();
        page_keys.sort_unstable();
        page_keys.dedup();
        let mut json_keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        json_keys.sort_unstable();
        assert_eq!(page_keys, json_keys);
    }

    /// The start tags of `html` (name, whole tag text), `<script>`/`<style>` contents
    /// skipped; panics on an end tag that does not match the innermost open element.
    fn check_nesting(html: &str) -> Vec<(String, String)> {
        const VOID: [&str; 4] = ["meta", "br", "img", "link"];
        let mut stack: Vec<String> = Vec::new();
        let mut opened = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').expect("tag closed");
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "close </{name}>");
                continue;
            }
            let name = tag.split([' ', '/']).next().unwrap().to_string();
            opened.push((name.clone(), tag.to_string()));
            if name == "script" || name == "style" {
                let close = format!("</{name}>");
                let at = rest.find(&close).expect("raw text element closed");
                assert!(!rest[..at].contains("</"), "no end tag inside <{name}>");
                rest = &rest[at + close.len()..];
                continue;
            }
            if !VOID.contains(&name.as_str()) {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        opened
    }

    #[test]
    fn page_is_well_nested_self_contained_and_shows_the_pipeline_in_order() {
        let html = with_status(render_html);
        let opened = check_nesting(&html);
        assert_eq!(opened.iter().filter(|(t, _)| t == "script").count(), 1);
        // No external asset: no element loads anything, links stay on the page.
        for (name, tag) in &opened {
            assert!(
                !["link", "img", "iframe", "object"].contains(&name.as_str()),
                "{tag}"
            );
            assert!(!tag.contains(" src="), "{tag}");
            if let Some((_, href)) = tag.split_once(" href=\"") {
                assert!(href.starts_with('#'), "only in-page links: {tag}");
            }
        }
        assert!(html.contains(&format!(
            "<noscript><meta http-equiv=\"refresh\" content=\"{NOSCRIPT_REFRESH_S}\"></noscript>"
        )));
        assert!(html.contains("fetch(\"/-/status.json\""), "{html}");
        // receivers → relabel → writers → endpoints, nested in that order.
        let pipeline =
            &html[html.find("id=\"pipeline\"").unwrap()..html.find("<h2>Destinations").unwrap()];
        let order = [
            "pyroscope.receive_http.front",
            "pyroscope.relabel.clean",
            "1 rule<",
            "pyroscope.write.a",
            "http://a.example:4040",
            "pyroscope.write.b",
            "http://b.example:4040",
            "http://c.example:4040/p?x=1&amp;y=2",
        ];
        let mut at = 0;
        for name in order {
            let found = pipeline[at..]
                .find(name)
                .unwrap_or_else(|| panic!("{name} after {at} in {pipeline}"));
            at += found + name.len();
        }
        assert!(pipeline.contains("<a class=\"c ep\" href=\"#dest-2\">"));
        // One destination row each, the failing one marked.
        assert!(html.contains("<tr id=\"dest-0\" data-row=\"0\"><td>"));
        assert!(html.contains("<tr id=\"dest-1\" data-row=\"1\" class=\"err\"><td>"));
        assert!(html.contains("<td class=\"n\" data-k=\"dest.0.sent_profiles\">3</td>"));
        assert!(html.contains("<span data-k=\"dest.0.queue\">4 / 20</span><div class=\"bar\"><div data-bar=\"0\" style=\"width:20.0%\"></div></div>"));
    }

    #[test]
    fn the_latest_error_over_the_cores_wins_and_long_ones_are_cut() {
        let config = config();
        let snap = snapshot(&config);
        let e = snap.dests[1].last_error.as_ref().unwrap();
        assert!(e.message.starts_with("failed to ingest"), "{e:?}");
        let m = DestMetrics::default();
        m.record_error(format_args!("{}", "é".repeat(1000)));
        let e = CoreSnapshot::capture([(&m, 0)].into_iter(), [].iter(), [].iter(), 0).dests[0]
            .last_error
            .clone()
            .unwrap();
        assert_eq!(
            e.message,
            format!("{}…", "é".repeat(crate::metrics::MAX_LAST_ERROR_BYTES / 2))
        );
    }
}
