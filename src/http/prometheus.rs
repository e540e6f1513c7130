//! `/metrics`: the server's counters in the Prometheus text exposition format 0.0.4.
//!
//! Names follow Prometheus' advice: a `wsloop_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters, and labels only from small fixed sets.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::handle::Handle;
use crate::http::Response;
use crate::metrics::{BOUNDS_US, Counters, HistogramSnapshot};
use crate::upgrade::RejectCause;

/// The content type Prometheus expects for this format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition text being written.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                // Label values here are numbers and fixed words: nothing to escape.
                let _ = write!(self.0, "{sep}{key}=\"{value}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, counter: &AtomicU64) {
        self.single(name, "counter", help, counter.load(Ordering::Relaxed));
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (i, count) in h.cumulative.iter().enumerate() {
            let le = match BOUNDS_US.get(i) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, count);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_ns as f64 / 1e9);
        self.sample(&format!("{name}_count"), labels, h.cumulative.last().copied().unwrap_or(0));
    }
}

pub(crate) fn metrics(handle: &Handle) -> Response {
    Response::new(200).header("Content-Type", CONTENT_TYPE).body(render(handle).into_bytes())
}

/// The whole exposition.
pub(crate) fn render(handle: &Handle) -> String {
    let shared = &handle.shared;
    let c = &shared.counters;
    let mut t = Text(String::with_capacity(8 << 10));
    let stats = handle.stats();
    t.single("wsloop_up", "gauge", "1 while the server runs.", 1);
    t.single(
        "wsloop_ready",
        "gauge",
        "1 when /readyz answers 200 (listening, not draining).",
        u8::from(handle.unready_reason().is_none()),
    );
    let uptime = c.started.elapsed().as_secs_f64();
    t.single("wsloop_uptime_seconds", "gauge", "Seconds since the server started.", uptime);
    connections(&mut t, c, stats.connections, stats.sockets);
    traffic(&mut t, c);
    closes(&mut t, c);
    t.single("wsloop_topics", "gauge", "Topics with at least one member.", stats.topics);
    let subscriptions = shared.topics.subscription_count();
    t.single("wsloop_subscriptions", "gauge", "Topic memberships over all topics.", subscriptions);
    reactors(&mut t, c);
    if let Some(cluster) = &shared.cluster {
        crate::cluster::render(cluster, &mut t.0);
    }
    t.0
}

fn connections(t: &mut Text, c: &Counters, open: usize, sockets: usize) {
    t.single("wsloop_connections_open", "gauge", "WebSocket connections open now.", open);
    t.single(
        "wsloop_sockets_open",
        "gauge",
        "Accepted sockets now (handshaking, open or closing; what max_connections bounds).",
        sockets,
    );
    t.counter("wsloop_connections_accepted_total", "Sockets accepted.", &c.accepted);
    t.counter(
        "wsloop_accept_errors_total",
        "accept() failures other than WouldBlock (e.g. out of file descriptors).",
        &c.accept_errors,
    );
    let name = "wsloop_connections_rejected_total";
    t.family(name, "counter", "Connections refused before opening, by reason.");
    t.sample(name, &[("reason", "max_connections")], Counters::get(&c.rejected_full));
    for (cause, n) in c.rejected.snapshot() {
        t.sample(name, &[("reason", RejectCause::label(cause))], n);
    }
    let name = "wsloop_handshake_failures_total";
    t.family(name, "counter", "Refused WebSocket upgrades, by the HTTP status sent.");
    for (status, n) in c.handshake_failures.snapshot() {
        t.sample(name, &[("status", &status_label(status))], n);
    }
    let name = "wsloop_http_responses_total";
    t.family(name, "counter", "Plain HTTP requests answered on the WebSocket port, by status.");
    for (status, n) in c.http_responses.snapshot() {
        t.sample(name, &[("status", &status_label(status))], n);
    }
}

fn traffic(t: &mut Text, c: &Counters) {
    t.counter("wsloop_messages_received_total", "Data messages received.", &c.messages_in);
    t.counter(
        "wsloop_messages_sent_total",
        "Data messages queued for sending (a publish counts once per recipient).",
        &c.messages_out,
    );
    let (bytes_in, bytes_out) = c.bytes();
    t.single(
        "wsloop_received_bytes_total",
        "counter",
        "WebSocket bytes read (over TLS, the plaintext).",
        bytes_in,
    );
    t.single(
        "wsloop_sent_bytes_total",
        "counter",
        "WebSocket bytes written (over TLS, the plaintext).",
        bytes_out,
    );
    t.counter("wsloop_publishes_total", "Handle::publish calls.", &c.publishes);
    t.counter(
        "wsloop_slow_consumer_closes_total",
        "Connections closed 1008 because they passed max_backpressure.",
        &c.slow_consumers_closed,
    );
    t.counter(
        "wsloop_dropped_messages_total",
        "Messages dropped by the Backpressure::Drop policy.",
        &c.messages_dropped,
    );
    t.counter(
        "wsloop_reads_paused_total",
        "Times a connection stopped being read because its worker was behind.",
        &c.reads_paused,
    );
    t.counter(
        "wsloop_tls_failures_total",
        "TLS connections ended by bad records or a failed TLS handshake (an alert sent).",
        &c.tls_failures,
    );
}

fn closes(t: &mut Text, c: &Counters) {
    let name = "wsloop_closes_total";
    t.family(name, "counter", "Connections ended, by close code (1006: no close handshake).");
    for (code, n) in c.closes.snapshot() {
        t.sample(name, &[("code", &status_label(code))], n);
    }
}

fn reactors(t: &mut Text, c: &Counters) {
    let name = "wsloop_reactor_connections_open";
    t.family(name, "gauge", "WebSocket connections open on each reactor.");
    for (i, m) in c.reactors.iter().enumerate() {
        t.sample(name, &[("reactor", &i.to_string())], m.open.load(Ordering::Relaxed));
    }
    let name = "wsloop_reactor_sockets";
    t.family(name, "gauge", "Sockets each reactor holds, as of its last loop turn.");
    for (i, m) in c.reactors.iter().enumerate() {
        t.sample(name, &[("reactor", &i.to_string())], m.sockets.load(Ordering::Relaxed));
    }
    let name = "wsloop_reactor_paused_connections";
    t.family(name, "gauge", "Connections not being read because their worker is behind.");
    for (i, m) in c.reactors.iter().enumerate() {
        t.sample(name, &[("reactor", &i.to_string())], m.paused.load(Ordering::Relaxed));
    }
    let name = "wsloop_reactor_turn_duration_seconds";
    t.family(name, "histogram", "Wall time of one reactor loop turn (poll return to next poll).");
    for (i, m) in c.reactors.iter().enumerate() {
        let mut snapshot = HistogramSnapshot::default();
        m.turns.add_to(&mut snapshot);
        t.histogram(name, &[("reactor", &i.to_string())], &snapshot);
    }
}

/// A status or close code as a label value; 0 (the "other" bucket) as `other`.
fn status_label(code: u16) -> String {
    if code == 0 { "other".to_owned() } else { code.to_string() }
}
