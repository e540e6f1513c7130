//! The sending half: what `Handle` calls to reach other nodes. Runs on the caller's
//! thread, never waits: numbers the message, frames it as a RESP PUBLISH and queues it
//! for the link within the byte budget.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::envelope::{self, Body, Origin};
use super::sequence::Stream;
use super::{Cluster, ClusterEvents, Outbound, PublishError, PublishErrorKind, bump, resp};
use crate::error::{CloseError, SendError, SendErrorKind};
use crate::event::{ConnId, Message};
use crate::handle::Handle;
use crate::protocol::CloseCode;

/// Where the envelope's sequence number sits in it.
const SEQ_AT: usize = 10;

impl Cluster {
    pub(crate) fn topic_channel(&self, topic: &str) -> Vec<u8> {
        [self.config.channel_prefix.as_bytes(), b"t:", topic.as_bytes()].concat()
    }

    pub(crate) fn broadcast_channel(&self) -> Vec<u8> {
        [self.config.channel_prefix.as_bytes(), b"all"].concat()
    }

    pub(crate) fn node_channel(&self, node: u32) -> Vec<u8> {
        format!("{}n:{node}", self.config.channel_prefix).into_bytes()
    }

    /// Queues `body` + `message` for the nodes listening on `channel`.
    fn enqueue(
        &self,
        stream: Stream,
        channel: &[u8],
        body: &Body,
        message: &Message,
    ) -> Result<(), PublishErrorKind> {
        if self.is_stopped() {
            return Err(PublishErrorKind::Stopped);
        }
        // Framed outside the lock with a placeholder number, patched under it.
        let origin = Origin { node: self.node, epoch: 0, seq: 0 };
        let env = envelope::encode(origin, body, message);
        let mut bytes = Vec::with_capacity(resp::command_len(&[b"PUBLISH", channel, &env]));
        resp::command(&mut bytes, &[b"PUBLISH", channel, &env]);
        let at = bytes.len() - 2 - env.len();
        let cost = bytes.capacity() + std::mem::size_of::<Outbound>();
        let direct = matches!(stream, Stream::Node(_));
        let mut sequencer = self.sequencer.lock();
        let before = self.queued.fetch_add(cost, Ordering::AcqRel);
        if before > 0 && before + cost > self.config.queue_bytes {
            self.release(cost);
            bump(&self.counters.refused);
            return Err(PublishErrorKind::QueueFull);
        }
        let (epoch, seq) = sequencer.next(&stream);
        bytes[at + SEQ_AT - 4..at + SEQ_AT].copy_from_slice(&epoch.to_be_bytes());
        bytes[at + SEQ_AT..at + SEQ_AT + 8].copy_from_slice(&seq.to_be_bytes());
        if self.queue.send(Outbound { bytes, direct, cost }).is_err() {
            self.release(cost);
            return Err(PublishErrorKind::Stopped);
        }
        drop(sequencer);
        bump(&self.counters.published);
        self.wake();
        Ok(())
    }
}

/// Cross-node publishing, addressing and events.
impl Handle {
    /// This node's id (0 outside a cluster); every [`ConnId`] of this server carries it.
    pub fn node_id(&self) -> u32 {
        self.shared.node
    }

    /// [`Handle::publish`] that says why when the message could not be queued for the
    /// other nodes (then it was not delivered anywhere, so a retry cannot duplicate it).
    /// Outside a cluster it never fails.
    ///
    /// # Errors
    /// See [`PublishErrorKind`].
    pub fn try_publish(
        &self,
        topic: &str,
        message: impl Into<Message>,
    ) -> Result<usize, PublishError> {
        let message = message.into();
        match self.publish_to_nodes(topic, &message, None) {
            Ok(()) => Ok(self.publish_here(topic, message, None)),
            Err(kind) => Err(PublishError { kind, message }),
        }
    }

    /// Sends `message` to this node's members of `topic` only (e.g. a notice after a
    /// [`ClusterEvent::Resync`](crate::ClusterEvent::Resync)).
    pub fn publish_local(&self, topic: &str, message: impl Into<Message>) -> usize {
        self.publish_here(topic, message.into(), None)
    }

    /// The cluster's events (gaps to resync, link down and up); `None` outside a
    /// cluster. Read them from any thread; past `ClusterConfig::events_capacity` unread
    /// events, new ones are dropped and counted.
    pub fn cluster_events(&self) -> Option<ClusterEvents> {
        self.shared.cluster.as_ref().map(|c| c.events())
    }

    /// Queues a publish for the other nodes; `Ok` outside a cluster.
    pub(crate) fn publish_to_nodes(
        &self,
        topic: &str,
        message: &Message,
        except: Option<ConnId>,
    ) -> Result<(), PublishErrorKind> {
        let Some(cluster) = &self.shared.cluster else { return Ok(()) };
        if topic.len() > usize::from(u16::MAX) {
            return Err(PublishErrorKind::TopicTooLong);
        }
        let channel = cluster.topic_channel(topic);
        let body = Body::Publish { topic: topic.to_owned(), except };
        cluster.enqueue(Stream::Topic(Arc::from(topic)), &channel, &body, message)
    }

    /// Queues a broadcast for the other nodes; `Ok` outside a cluster.
    pub(crate) fn broadcast_to_nodes(&self, message: &Message) -> Result<(), PublishErrorKind> {
        let Some(cluster) = &self.shared.cluster else { return Ok(()) };
        cluster.enqueue(Stream::Broadcast, &cluster.broadcast_channel(), &Body::Broadcast, message)
    }

    /// [`Handle::send`] to a connection of another node.
    pub(crate) fn send_to_node(&self, id: ConnId, message: Message) -> Result<(), SendError> {
        let Some(cluster) = self.shared.cluster.as_ref().filter(|c| c.is_remote(id)) else {
            return Err(SendError { kind: SendErrorKind::UnknownConnection, message });
        };
        let channel = cluster.node_channel(id.node());
        match cluster.enqueue(Stream::Node(id.node()), &channel, &Body::Send { to: id }, &message) {
            Ok(()) => Ok(()),
            Err(PublishErrorKind::Stopped) => {
                Err(SendError { kind: SendErrorKind::ServerStopped, message })
            }
            Err(_) => Err(SendError { kind: SendErrorKind::ClusterUnavailable, message }),
        }
    }

    /// [`Handle::send_many`]'s ids of other nodes, one direct send each; how many were
    /// queued.
    pub(crate) fn send_to_nodes(&self, ids: &[ConnId], message: &Message) -> usize {
        let Some(cluster) = &self.shared.cluster else { return 0 };
        let remote = ids.iter().filter(|id| cluster.is_remote(**id));
        remote.filter(|id| self.send_to_node(**id, message.clone()).is_ok()).count()
    }

    /// [`Handle::close`] of a connection of another node (code and reason checked).
    pub(crate) fn close_on_node(
        &self,
        id: ConnId,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), CloseError> {
        let Some(cluster) = self.shared.cluster.as_ref().filter(|c| c.is_remote(id)) else {
            return Err(CloseError::UnknownConnection);
        };
        let channel = cluster.node_channel(id.node());
        let body = Body::Close { to: id, code, reason: reason.to_owned() };
        let empty = Message::Binary(Vec::new());
        match cluster.enqueue(Stream::Node(id.node()), &channel, &body, &empty) {
            Ok(()) => Ok(()),
            Err(PublishErrorKind::Stopped) => Err(CloseError::ServerStopped),
            Err(_) => Err(CloseError::ClusterUnavailable),
        }
    }
}
