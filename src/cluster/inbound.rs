//! The receiving half: one envelope from Redis, checked against its stream's sequence and
//! fanned out to local connections (through the same reactor commands as a local
//! publish, so it never waits on a socket).

use super::envelope::{self, Body};
use super::sequence::{Stream, Tracker, Verdict};
use super::{Cluster, ClusterEvent, bump};
use crate::handle::Handle;

/// Origins × streams remembered at most (16 bytes and a topic name each).
const TRACKED_STREAMS: usize = 1 << 20;

pub(crate) struct Inbound {
    pub(crate) tracker: Tracker,
}

impl Inbound {
    pub(crate) fn new() -> Inbound {
        Inbound { tracker: Tracker::new(TRACKED_STREAMS) }
    }

    /// Handles one message Redis pushed.
    pub(crate) fn message(&mut self, cluster: &Cluster, handle: &Handle, payload: &[u8]) {
        let counters = &cluster.counters;
        let env = match envelope::decode(payload) {
            Ok(env) => env,
            Err(e) => {
                log::debug!("cluster: dropped a malformed envelope: {e:?}");
                return bump(&counters.malformed);
            }
        };
        if env.origin == cluster.node {
            // Our own publish: delivered locally when it was made.
            return;
        }
        bump(&counters.received);
        let stream = match &env.body {
            Body::Publish { topic, .. } => Stream::Topic(topic.as_str().into()),
            Body::Broadcast => Stream::Broadcast,
            Body::Send { .. } | Body::Close { .. } => Stream::Node(cluster.node),
        };
        match self.tracker.check(env.origin, stream.clone(), env.epoch, env.seq) {
            Verdict::InOrder => {}
            Verdict::Duplicate => return bump(&counters.duplicates),
            Verdict::Gap { missed } => {
                bump(&counters.gaps);
                counters.missed.fetch_add(missed, std::sync::atomic::Ordering::Relaxed);
                match stream {
                    Stream::Topic(topic) => {
                        cluster.emit(ClusterEvent::Resync { topic: topic.to_string() })
                    }
                    Stream::Broadcast => cluster.emit(ClusterEvent::ResyncBroadcast),
                    Stream::Node(_) => {}
                }
            }
        }
        deliver(cluster, handle, env.body, env.message);
    }
}

/// Hands the message to the reactors. One whose fan-out budget is full drops it (its
/// members would miss it): that is a gap too, reported like one.
fn deliver(cluster: &Cluster, handle: &Handle, body: Body, message: crate::Message) {
    let stale = &cluster.counters.stale;
    match body {
        Body::Publish { topic, except } => {
            // The excepted connection is the publisher's, on its own node.
            let except = except.filter(|id| id.node() == cluster.node);
            if !handle.fan_out_here(&topic, message, except).1 {
                bump(&cluster.counters.local_drops);
                cluster.emit(ClusterEvent::Resync { topic });
            }
        }
        Body::Broadcast => {
            if !handle.broadcast_here(message) {
                bump(&cluster.counters.local_drops);
                cluster.emit(ClusterEvent::ResyncBroadcast);
            }
        }
        Body::Send { to } => {
            if to.node() != cluster.node || handle.send(to, message).is_err() {
                bump(stale);
            }
        }
        Body::Close { to, code, reason } => {
            if to.node() != cluster.node || handle.close(to, code, &reason).is_err() {
                bump(stale);
            }
        }
    }
}
