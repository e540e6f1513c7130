//! Which Redis channels the link should be subscribed to, and when to say so (sans-IO:
//! the caller passes `now`).
//!
//! A topic is wanted while it has a local member. A newly wanted topic is subscribed on
//! the next turn; a topic that loses its last member is unsubscribed `linger` later
//! unless a member came back meanwhile (so churn in a small room costs no Redis
//! traffic). After a reconnect every wanted topic is subscribed again, and each one
//! whose stream may have a gap is reported once Redis confirms it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not asked on this connection.
    Unsent,
    /// SUBSCRIBE sent, not yet confirmed.
    Sent,
    Confirmed,
}

#[derive(Debug)]
struct Entry {
    state: State,
    /// Since when it has had no local member; `None` while it has one.
    unwanted_since: Option<Instant>,
    /// Messages may have been lost (the link went down while it was wanted).
    gap: bool,
}

/// SUBSCRIBE and UNSUBSCRIBE to send now.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) subscribe: Vec<Arc<str>>,
    pub(crate) unsubscribe: Vec<Arc<str>>,
}

pub(crate) struct Subscriptions {
    topics: HashMap<Arc<str>, Entry>,
    /// Topics to look at on the next turn (newly wanted, or back after a reconnect).
    pending: VecDeque<Arc<str>>,
    /// Topics that lost their last member, oldest first (`linger` is the same for all).
    lingering: VecDeque<(Instant, Arc<str>)>,
    linger: Duration,
    /// Whether the link is connected (subscriptions are sent only then).
    up: bool,
}

impl Subscriptions {
    pub(crate) fn new(linger: Duration) -> Subscriptions {
        Subscriptions {
            topics: HashMap::new(),
            pending: VecDeque::new(),
            lingering: VecDeque::new(),
            linger,
            up: false,
        }
    }

    /// A topic gained its first local member (`true`) or lost its last (`false`).
    pub(crate) fn set_wanted(&mut self, topic: Arc<str>, wanted: bool, now: Instant) {
        let up = self.up;
        match (self.topics.get_mut(&topic), wanted) {
            (Some(entry), true) => entry.unwanted_since = None,
            (Some(entry), false) if entry.unwanted_since.is_none() => {
                entry.unwanted_since = Some(now);
                self.lingering.push_back((now, topic));
            }
            (Some(_), false) => {}
            (None, true) => {
                let entry = Entry { state: State::Unsent, unwanted_since: None, gap: !up };
                self.topics.insert(topic.clone(), entry);
                self.pending.push_back(topic);
            }
            (None, false) => {}
        }
    }

    /// What to send now: up to `max` topics per command list.
    pub(crate) fn batch(&mut self, now: Instant, max: usize) -> Batch {
        let mut batch = Batch::default();
        if !self.up {
            return batch;
        }
        while batch.subscribe.len() < max {
            let Some(topic) = self.pending.pop_front() else { break };
            match self.topics.get_mut(&topic) {
                Some(e) if e.state == State::Unsent && e.unwanted_since.is_none() => {
                    e.state = State::Sent;
                    batch.subscribe.push(topic);
                }
                Some(e) if e.state == State::Unsent => {
                    self.topics.remove(&topic);
                }
                _ => {}
            }
        }
        while batch.unsubscribe.len() < max {
            let Some((since, topic)) = self.lingering.front().cloned() else { break };
            if since + self.linger > now {
                break;
            }
            self.lingering.pop_front();
            let Some(entry) = self.topics.get(&topic) else { continue };
            if entry.unwanted_since == Some(since) {
                if entry.state != State::Unsent {
                    batch.unsubscribe.push(topic.clone());
                }
                self.topics.remove(&topic);
            }
        }
        batch
    }

    /// Redis confirmed a SUBSCRIBE; true when the topic may have missed messages (the
    /// caller tells the application to resync it).
    pub(crate) fn confirmed(&mut self, topic: &str) -> bool {
        match self.topics.get_mut(topic) {
            Some(e) if e.state == State::Sent => {
                e.state = State::Confirmed;
                std::mem::take(&mut e.gap)
            }
            _ => false,
        }
    }

    /// The link connected: every topic is sent again.
    pub(crate) fn connected(&mut self) {
        self.up = true;
        self.pending.clear();
        self.pending.extend(self.topics.keys().cloned());
    }

    /// The link went down: nothing is subscribed any more, and every topic still wanted
    /// may miss messages until it is subscribed again.
    pub(crate) fn disconnected(&mut self) {
        self.up = false;
        self.topics.retain(|_, e| e.unwanted_since.is_none());
        for entry in self.topics.values_mut() {
            entry.state = State::Unsent;
            entry.gap = true;
        }
    }

    /// Whether every wanted topic is confirmed (the node is ready).
    pub(crate) fn synced(&self) -> bool {
        self.up
            && self.pending.is_empty()
            && self.topics.values().all(|e| e.state == State::Confirmed)
    }

    /// Topics subscribed or being subscribed.
    pub(crate) fn len(&self) -> usize {
        self.topics.len()
    }

    /// When the next lingering topic is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.lingering.front().map(|(since, _)| *since + self.linger)
    }

    /// Work is waiting for the next turn.
    pub(crate) fn has_pending(&self) -> bool {
        self.up && !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn names(v: &[Arc<str>]) -> Vec<&str> {
        v.iter().map(|t| &**t).collect()
    }

    #[test]
    fn a_topic_is_subscribed_once_and_unsubscribed_after_its_linger() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new(Duration::from_secs(2));
        s.connected();
        s.set_wanted(t("a"), true, t0);
        let b = s.batch(t0, 10);
        assert_eq!(names(&b.subscribe), ["a"]);
        assert!(!s.synced());
        assert!(!s.confirmed("a"), "no gap on a first subscribe");
        assert!(s.synced());
        // Leaves, comes back within the linger: nothing is sent.
        s.set_wanted(t("a"), false, t0 + Duration::from_secs(1));
        s.set_wanted(t("a"), true, t0 + Duration::from_millis(1500));
        assert_eq!(s.batch(t0 + Duration::from_secs(5), 10), Batch::default());
        // Leaves for good: unsubscribed exactly when the linger has passed.
        let left = t0 + Duration::from_secs(6);
        s.set_wanted(t("a"), false, left);
        assert_eq!(s.next_deadline(), Some(left + Duration::from_secs(2)));
        assert_eq!(s.batch(left + Duration::from_millis(1999), 10), Batch::default());
        let b = s.batch(left + Duration::from_secs(2), 10);
        assert_eq!(names(&b.unsubscribe), ["a"]);
        assert_eq!((s.len(), s.next_deadline()), (0, None));
    }

    #[test]
    fn a_reconnect_resubscribes_in_batches_and_reports_gaps() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new(Duration::from_secs(2));
        s.connected();
        for i in 0..5 {
            s.set_wanted(t(&format!("t{i}")), true, t0);
        }
        for topic in s.batch(t0, 10).subscribe {
            s.confirmed(&topic);
        }
        s.disconnected();
        assert_eq!(s.batch(t0, 10), Batch::default(), "nothing is sent while down");
        s.set_wanted(t("t5"), true, t0);
        s.set_wanted(t("t0"), false, t0);
        s.connected();
        let (first, second) = (s.batch(t0, 3).subscribe, s.batch(t0, 3).subscribe);
        assert_eq!((first.len(), second.len()), (3, 2), "t0 left while down; batches of 3");
        assert!(!s.synced());
        for topic in first.iter().chain(&second) {
            assert!(s.confirmed(topic), "{topic} may have missed messages");
        }
        assert!(s.synced());
    }

    #[test]
    fn a_topic_wanted_and_left_before_it_was_sent_costs_nothing() {
        let t0 = Instant::now();
        let mut s = Subscriptions::new(Duration::ZERO);
        s.connected();
        s.set_wanted(t("a"), true, t0);
        s.set_wanted(t("a"), false, t0);
        assert_eq!(s.batch(t0, 10), Batch::default());
        assert_eq!(s.len(), 0);
    }
}
