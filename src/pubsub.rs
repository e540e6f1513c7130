//! Topics: who is subscribed to what, for publish fan-out from any thread.
//!
//! One registry per server, behind a read-write lock: topic → the members on each
//! reactor, and connection → its topics. `subscribe` and `unsubscribe` write it directly
//! from the calling thread (after checking the id is open, under the lock, so a
//! connection that closes meanwhile is cleaned up after them). A publish sends one
//! command to each reactor that has members; each reactor reads its own member set and
//! writes the one shared frame to every member. A topic with no members is removed, so
//! empty topics take no memory.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::cluster::Cluster;
use crate::event::ConnId;

/// Why a subscribe was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The id is unknown, closing or closed.
    UnknownConnection,
    /// The connection is already in `max_topics_per_connection` topics.
    TooManyTopics {
        /// The configured limit.
        limit: usize,
    },
    /// The topic already has `max_subscribers_per_topic` members.
    TooManySubscribers {
        /// The configured limit.
        limit: usize,
    },
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::UnknownConnection => f.write_str("unknown or closed connection"),
            SubscribeError::TooManyTopics { limit } => {
                write!(f, "connection is in {limit} topics already (max_topics_per_connection)")
            }
            SubscribeError::TooManySubscribers { limit } => {
                write!(f, "topic has {limit} subscribers already (max_subscribers_per_topic)")
            }
        }
    }
}

impl std::error::Error for SubscribeError {}

#[derive(Default)]
struct Topic {
    /// Members by reactor index.
    by_reactor: Vec<HashSet<ConnId>>,
    size: usize,
}

#[derive(Default)]
struct Registry {
    topics: HashMap<Arc<str>, Topic>,
    memberships: HashMap<ConnId, Vec<Arc<str>>>,
}

pub(crate) struct Topics {
    registry: RwLock<Registry>,
    reactors: usize,
    max_topics_per_connection: usize,
    max_subscribers_per_topic: usize,
    /// In a cluster: told when a topic gains its first member or loses its last, so the
    /// node subscribes in Redis to exactly the topics it has members of.
    cluster: Option<Arc<Cluster>>,
}

impl Topics {
    /// Tells `cluster` about every topic that gains its first or loses its last member.
    pub(crate) fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Topics {
        self.cluster = cluster;
        self
    }

    pub(crate) fn new(reactors: usize, max_topics: usize, max_subscribers: usize) -> Topics {
        Topics {
            registry: RwLock::new(Registry::default()),
            reactors,
            max_topics_per_connection: max_topics,
            max_subscribers_per_topic: max_subscribers,
            cluster: None,
        }
    }

    /// Adds `id` to `topic`; `is_open` is checked under the lock. Subscribing twice is a
    /// no-op. Returns whether it was new.
    pub(crate) fn subscribe(
        &self,
        id: ConnId,
        topic: &str,
        is_open: impl Fn() -> bool,
    ) -> Result<bool, SubscribeError> {
        let mut reg = self.registry.write();
        if !is_open() {
            return Err(SubscribeError::UnknownConnection);
        }
        let Registry { topics, memberships } = &mut *reg;
        let mine = memberships.get(&id);
        if mine.is_some_and(|t| t.iter().any(|t| &**t == topic)) {
            return Ok(false);
        }
        let limit = self.max_topics_per_connection;
        if limit > 0 && mine.is_some_and(|t| t.len() >= limit) {
            return Err(SubscribeError::TooManyTopics { limit });
        }
        let limit = self.max_subscribers_per_topic;
        if limit > 0 && topics.get(topic).is_some_and(|t| t.size >= limit) {
            return Err(SubscribeError::TooManySubscribers { limit });
        }
        let (name, entry) = match topics.get_key_value(topic) {
            Some((name, _)) => (name.clone(), topics.get_mut(topic)),
            None => {
                let name: Arc<str> = Arc::from(topic);
                let fresh = Topic {
                    by_reactor: (0..self.reactors).map(|_| HashSet::new()).collect(),
                    size: 0,
                };
                topics.insert(name.clone(), fresh);
                if let Some(cluster) = &self.cluster {
                    cluster.interest(&name, true);
                }
                (name.clone(), topics.get_mut(&name))
            }
        };
        if let Some(entry) = entry
            && let Some(members) = entry.by_reactor.get_mut(id.reactor())
        {
            members.insert(id);
            entry.size += 1;
        }
        memberships.entry(id).or_default().push(name);
        Ok(true)
    }

    /// Removes `id` from `topic`; returns whether it was a member.
    pub(crate) fn unsubscribe(&self, id: ConnId, topic: &str) -> bool {
        let mut reg = self.registry.write();
        let Registry { topics, memberships } = &mut *reg;
        let Some(mine) = memberships.get_mut(&id) else { return false };
        let Some(at) = mine.iter().position(|t| &**t == topic) else { return false };
        mine.swap_remove(at);
        if mine.is_empty() {
            memberships.remove(&id);
        }
        leave(topics, id, topic, self.cluster.as_deref());
        true
    }

    /// Removes every membership of `id` (it has ended).
    pub(crate) fn remove_connection(&self, id: ConnId) {
        if !self.registry.read().memberships.contains_key(&id) {
            return;
        }
        let mut reg = self.registry.write();
        let Registry { topics, memberships } = &mut *reg;
        for topic in memberships.remove(&id).unwrap_or_default() {
            leave(topics, id, &topic, self.cluster.as_deref());
        }
    }

    /// The reactors with members in `topic`.
    pub(crate) fn reactors_of(&self, topic: &str) -> Vec<usize> {
        let reg = self.registry.read();
        let Some(entry) = reg.topics.get(topic) else { return Vec::new() };
        entry.by_reactor.iter().enumerate().filter(|(_, m)| !m.is_empty()).map(|(i, _)| i).collect()
    }

    /// Calls `f` with each member of `topic` on `reactor`.
    pub(crate) fn for_each_member(&self, topic: &str, reactor: usize, mut f: impl FnMut(ConnId)) {
        let reg = self.registry.read();
        if let Some(members) = reg.topics.get(topic).and_then(|t| t.by_reactor.get(reactor)) {
            members.iter().for_each(|&id| f(id));
        }
    }

    pub(crate) fn size(&self, topic: &str) -> usize {
        self.registry.read().topics.get(topic).map_or(0, |t| t.size)
    }

    pub(crate) fn topics_of(&self, id: ConnId) -> Vec<String> {
        let reg = self.registry.read();
        reg.memberships
            .get(&id)
            .map_or_else(Vec::new, |t| t.iter().map(|t| t.to_string()).collect())
    }

    pub(crate) fn members(&self, topic: &str) -> Vec<ConnId> {
        let reg = self.registry.read();
        reg.topics
            .get(topic)
            .map_or_else(Vec::new, |t| t.by_reactor.iter().flatten().copied().collect())
    }

    /// Topics with at least one member.
    pub(crate) fn topic_count(&self) -> usize {
        self.registry.read().topics.len()
    }

    /// Memberships over all topics.
    pub(crate) fn subscription_count(&self) -> usize {
        self.registry.read().topics.values().map(|t| t.size).sum()
    }

    /// The `n` topics with the most members, largest first (ties by name).
    pub(crate) fn largest(&self, n: usize) -> Vec<(String, usize)> {
        let registry = self.registry.read();
        let mut all: Vec<(&Arc<str>, usize)> =
            registry.topics.iter().map(|(name, t)| (name, t.size)).collect();
        let by_size =
            |a: &(&Arc<str>, usize), b: &(&Arc<str>, usize)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
        if all.len() > n {
            all.select_nth_unstable_by(n, by_size);
            all.truncate(n);
        }
        all.sort_unstable_by(by_size);
        all.into_iter().map(|(name, size)| (name.to_string(), size)).collect()
    }
}

fn leave(
    topics: &mut HashMap<Arc<str>, Topic>,
    id: ConnId,
    topic: &str,
    cluster: Option<&Cluster>,
) {
    let Some(entry) = topics.get_mut(topic) else { return };
    if let Some(members) = entry.by_reactor.get_mut(id.reactor())
        && members.remove(&id)
    {
        entry.size -= 1;
    }
    if entry.size == 0
        && let Some((name, _)) = topics.remove_entry(topic)
        && let Some(cluster) = cluster
    {
        cluster.interest(&name, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(reactor: usize, slot: usize) -> ConnId {
        ConnId::new(reactor, 1, slot)
    }

    #[test]
    fn subscribe_unsubscribe_and_cleanup() {
        let t = Topics::new(2, 0, 0);
        assert_eq!(t.subscribe(id(0, 1), "a", || true), Ok(true));
        assert_eq!(t.subscribe(id(0, 1), "a", || true), Ok(false));
        assert_eq!(t.subscribe(id(1, 1), "a", || true), Ok(true));
        assert_eq!(t.subscribe(id(1, 1), "b", || true), Ok(true));
        assert_eq!(t.size("a"), 2);
        assert_eq!(t.reactors_of("a"), vec![0, 1]);
        assert_eq!(t.reactors_of("b"), vec![1]);
        assert!(t.unsubscribe(id(0, 1), "a"));
        assert!(!t.unsubscribe(id(0, 1), "a"));
        assert_eq!(t.reactors_of("a"), vec![1]);
        t.remove_connection(id(1, 1));
        assert_eq!((t.size("a"), t.size("b"), t.topic_count()), (0, 0, 0));
        assert!(t.topics_of(id(1, 1)).is_empty());
    }

    #[test]
    fn largest_topics_and_subscriptions() {
        let t = Topics::new(1, 0, 0);
        for (slot, topics) in [(1, &["a", "b", "c"][..]), (2, &["b", "c"]), (3, &["c"])] {
            for topic in topics {
                t.subscribe(id(0, slot), topic, || true).unwrap();
            }
        }
        assert_eq!(t.subscription_count(), 6);
        assert_eq!(t.largest(2), vec![("c".to_owned(), 3), ("b".to_owned(), 2)]);
        assert_eq!(t.largest(10).len(), 3);
    }

    #[test]
    fn limits_name_themselves() {
        let t = Topics::new(1, 2, 1);
        t.subscribe(id(0, 1), "a", || true).unwrap();
        t.subscribe(id(0, 1), "b", || true).unwrap();
        assert_eq!(
            t.subscribe(id(0, 1), "c", || true),
            Err(SubscribeError::TooManyTopics { limit: 2 })
        );
        assert_eq!(
            t.subscribe(id(0, 2), "a", || true),
            Err(SubscribeError::TooManySubscribers { limit: 1 })
        );
        assert_eq!(t.subscribe(id(0, 3), "z", || false), Err(SubscribeError::UnknownConnection));
        assert_eq!(t.topic_count(), 2);
    }
}
