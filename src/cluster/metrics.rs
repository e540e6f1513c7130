//! The cluster's counters in `/metrics` (Prometheus text format, `wsloop_cluster_*`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Cluster;

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
}

fn counter(out: &mut String, name: &str, help: &str, counter: &AtomicU64) {
    family(out, name, "counter", help, counter.load(Ordering::Relaxed));
}

/// Appends the cluster's families to an exposition.
pub(crate) fn render(cluster: &Cluster, out: &mut String) {
    let c = &cluster.counters;
    family(out, "wsloop_cluster_node_id", "gauge", "This node's id.", cluster.node);
    let up = u8::from(c.up.load(Ordering::Relaxed));
    family(out, "wsloop_cluster_up", "gauge", "1 while the Redis link is up and subscribed.", up);
    let subscribed = c.subscribed.load(Ordering::Relaxed);
    family(
        out,
        "wsloop_cluster_subscribed_topics",
        "gauge",
        "Topics subscribed in Redis.",
        subscribed,
    );
    let queued = cluster.queued_bytes();
    family(out, "wsloop_cluster_queue_bytes", "gauge", "Bytes queued for Redis.", queued);
    let rows: [(&str, &str, &AtomicU64); 15] = [
        (
            "published",
            "Publishes, broadcasts and direct sends queued for other nodes.",
            &c.published,
        ),
        ("refused", "Cross-node messages refused because the queue was full.", &c.refused),
        ("received", "Messages from other nodes.", &c.received),
        ("duplicates", "Messages from other nodes dropped as already seen.", &c.duplicates),
        ("gaps", "Sequence gaps seen (messages from another node lost).", &c.gaps),
        ("missed_messages", "Messages known lost from sequence gaps.", &c.missed),
        ("resyncs", "Resync events raised (gaps and resubscribes).", &c.resyncs),
        ("malformed", "Messages on our channels that were not valid envelopes.", &c.malformed),
        ("connects", "Connections to Redis established.", &c.connects),
        ("disconnects", "Established connections to Redis lost.", &c.disconnects),
        ("unknown_node", "Direct sends to a node nobody listens for.", &c.unknown_node),
        ("stale", "Direct sends and closes for connections that have ended.", &c.stale),
        ("events_dropped", "Cluster events dropped because nobody read them.", &c.events_dropped),
        ("lost_bytes", "Bytes not yet written to Redis when its link dropped.", &c.lost_bytes),
        ("local_drops", "Messages from other nodes a reactor had no room for.", &c.local_drops),
    ];
    for (name, help, value) in rows {
        counter(out, &format!("wsloop_cluster_{name}_total"), help, value);
    }
}
