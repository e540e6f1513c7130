//! How events reach the application: a `Handler` on a worker pool or on the reactor
//! thread, or a plain receiver for applications that run their own threads.
//!
//! A reactor collects each worker's events during a turn and sends them as one batch at
//! the end of it. What waits for a worker is bounded in bytes ([`Budget`]: every event at
//! its memory cost, from the moment a reactor makes it until the worker has handled it)
//! and in batches (the channel). When a worker is over either bound, the reactors stop
//! reading its connections until it catches up, so TCP flow control slows the senders
//! and no event is dropped.

use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

use crate::event::{ConnId, ConnectInfo, DisconnectReason, Event, Message, MessageRef};
use crate::handle::Handle;
use crate::outbox;
use crate::wire;

mod doorbell;
mod recycled;
mod spares;

pub(crate) use doorbell::Doorbell;
use recycled::Recycled;
use spares::Spares;

/// The application's side of a server: called for every event.
///
/// In worker-pool dispatch the methods of one connection run on one worker, in order;
/// different connections run in parallel, so the handler is `Sync`.
pub trait Handler: Send + Sync + 'static {
    /// A connection completed its handshake.
    fn on_connect(&self, handle: &Handle, info: ConnectInfo) {
        let _ = (handle, info);
    }

    /// A message arrived.
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message);

    /// A message arrived, lent rather than given: called instead of
    /// [`on_message`](Handler::on_message) with inline dispatch when the message came
    /// whole in one read, so it is handled with no allocation. It must do what
    /// `on_message` would; by default it makes the owned message and calls that.
    ///
    /// An answer to `id` itself ([`Handle::send_ref`] or [`Handle::send`]) made here is
    /// framed straight into the reactor's write buffer: no queue, no allocation.
    fn on_message_ref(&self, handle: &Handle, id: ConnId, message: MessageRef<'_>) {
        self.on_message(handle, id, message.to_message());
    }

    /// A write queue that had filled has emptied (only with `Config::drain_events`).
    fn on_drain(&self, handle: &Handle, id: ConnId) {
        let _ = (handle, id);
    }

    /// The connection ended; called exactly once after `on_connect` (and once for a client
    /// connection that never opened).
    fn on_disconnect(&self, handle: &Handle, id: ConnId, reason: DisconnectReason) {
        let _ = (handle, id, reason);
    }

    /// A client connection ([`Handle::connect`]) dropped, or an attempt to open it
    /// failed, for `reason`; attempt `attempt` starts in `retry_in`. Its id stays valid;
    /// `on_connect` is called again when it reopens.
    fn on_reconnecting(
        &self,
        handle: &Handle,
        id: ConnId,
        attempt: u32,
        retry_in: std::time::Duration,
        reason: DisconnectReason,
    ) {
        let _ = (handle, id, attempt, retry_in, reason);
    }
}

/// What travels to a worker: an event, or a barrier that the worker hands straight back
/// to the reactor once every earlier event of that connection has been handled.
///
/// `Connect` is boxed so the common entries stay small: an `Event` is as large as its
/// `ConnectInfo`, and a batch can hold thousands of messages.
pub(crate) enum Envelope {
    Connect(Box<ConnectInfo>),
    Message {
        id: ConnId,
        message: Message,
    },
    Drain {
        id: ConnId,
    },
    Disconnect {
        id: ConnId,
        reason: DisconnectReason,
    },
    /// Rare (client connections only): boxed, so it does not widen every entry.
    Reconnecting(Box<Event>),
    Barrier(ConnId),
}

impl Envelope {
    fn of(event: Event) -> Envelope {
        match event {
            Event::Connect(info) => Envelope::Connect(Box::new(info)),
            Event::Message { id, message } => Envelope::Message { id, message },
            Event::Drain { id } => Envelope::Drain { id },
            Event::Disconnect { id, reason } => Envelope::Disconnect { id, reason },
            event @ Event::Reconnecting { .. } => Envelope::Reconnecting(Box::new(event)),
        }
    }

    /// The event inside; `Err` with the id for a barrier.
    fn open(self) -> Result<Event, ConnId> {
        Ok(match self {
            Envelope::Connect(info) => Event::Connect(*info),
            Envelope::Message { id, message } => Event::Message { id, message },
            Envelope::Drain { id } => Event::Drain { id },
            Envelope::Disconnect { id, reason } => Event::Disconnect { id, reason },
            Envelope::Reconnecting(event) => *event,
            Envelope::Barrier(id) => return Err(id),
        })
    }
}

impl Envelope {
    /// What the entry holds in memory: itself in its batch, and what it points to.
    fn cost(&self) -> usize {
        /// An allocation's header and rounding.
        const ALLOCATION: usize = 32;
        size_of::<Envelope>()
            + match self {
                Envelope::Connect(info) => {
                    size_of::<ConnectInfo>() + info.path.len() + info.query.len() + 3 * ALLOCATION
                }
                Envelope::Message { message, .. } => message.len() + 16 + ALLOCATION,
                Envelope::Reconnecting(_) => size_of::<Event>() + ALLOCATION,
                Envelope::Disconnect { .. } | Envelope::Drain { .. } | Envelope::Barrier(_) => 0,
            }
    }
}

/// The bytes of events waiting for each worker (or for the plain receiver), against a
/// limit: reactors add when they queue an event, the consumer subtracts once handled.
pub(crate) struct Budget {
    queued: Box<[AtomicUsize]>,
    limit: usize,
    /// Emptied batch buffers, back from the workers for the reactors to fill again: a
    /// buffer is not freed on one thread after growing on another.
    spares: Spares<Envelope>,
}

impl Budget {
    pub(crate) fn new(workers: usize, limit: usize) -> Budget {
        Budget {
            queued: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            limit,
            spares: Spares::new(),
        }
    }

    /// An empty batch buffer, reused when one is spare.
    fn spare_batch(&self) -> Vec<Envelope> {
        self.spares.take()
    }

    /// Keeps a batch buffer, emptied after carrying `carried` events, for reuse if the
    /// recent load needs it.
    fn return_batch(&self, batch: Vec<Envelope>, carried: usize) {
        self.spares.give_back(batch, carried);
    }

    fn add(&self, worker: usize, cost: usize) {
        if let Some(q) = self.queued.get(worker) {
            q.fetch_add(cost, Ordering::Relaxed);
        }
    }

    fn sub(&self, worker: usize, cost: usize) {
        if let Some(q) = self.queued.get(worker) {
            q.fetch_sub(cost, Ordering::Relaxed);
        }
    }

    /// Whether the worker holds more than the limit, counting `unsent` bytes a reactor
    /// has not added yet: its connections are not read.
    fn is_over(&self, worker: usize, unsent: usize) -> bool {
        self.queued.get(worker).is_some_and(|q| q.load(Ordering::Relaxed) + unsent > self.limit)
    }

    /// The bytes waiting for `worker`.
    #[cfg(test)]
    pub(crate) fn queued(&self, worker: usize) -> usize {
        self.queued.get(worker).map_or(0, |q| q.load(Ordering::Relaxed))
    }
}

pub(crate) fn deliver(handler: &dyn Handler, handle: &Handle, event: Event) {
    match event {
        Event::Connect(info) => handler.on_connect(handle, info),
        Event::Message { id, message } => handler.on_message(handle, id, message),
        Event::Drain { id } => handler.on_drain(handle, id),
        Event::Disconnect { id, reason } => handler.on_disconnect(handle, id, reason),
        Event::Reconnecting { id, attempt, retry_in, reason } => {
            handler.on_reconnecting(handle, id, attempt, retry_in, reason)
        }
    }
}

/// How many handler calls a worker's sends may wait for: they leave together, one
/// command per reactor, after this many calls or at the end of the batch, whichever
/// comes first (a handler about to block calls [`Handle::flush`]).
const CALLS_PER_FLUSH: usize = 32;

/// Runs one worker until every reactor has dropped its sender.
pub(crate) fn run_worker(
    handler: Arc<dyn Handler>,
    handle: Handle,
    (batches, bell): (Receiver<Vec<Envelope>>, Arc<Doorbell>),
    (budget, index): (Arc<Budget>, usize),
) {
    outbox::become_worker(&handle.shared);
    while let Some(mut batch) = bell.wait(&batches) {
        // One shared update per batch, not per event: the count's cache line is written
        // by the reactors too.
        let cost: usize = batch.iter().map(Envelope::cost).sum();
        let carried = batch.len();
        for (n, envelope) in batch.drain(..).enumerate() {
            match envelope.open() {
                Ok(event) => deliver(&*handler, &handle, event),
                Err(barrier) => handle.barrier_passed(barrier),
            }
            if n % CALLS_PER_FLUSH == CALLS_PER_FLUSH - 1 {
                outbox::flush_worker(&handle.shared);
            }
        }
        // The batch's replies go back as one command per reactor: one channel operation
        // and at most one wake-up, not one per event.
        outbox::flush_worker(&handle.shared);
        budget.sub(index, cost);
        budget.return_batch(batch, carried);
    }
}

/// A reactor's outlet for events.
pub(crate) enum Dispatcher {
    Inline { handler: Arc<dyn Handler>, handle: Handle },
    Queued(Queues),
}

pub(crate) struct Queues {
    outlets: WorkerOutlets,
    budget: Arc<Budget>,
    /// Per worker, the cost of this turn's events, added to `budget` when the batch
    /// leaves (one shared update per batch).
    unsent: Vec<usize>,
    batches: Vec<Vec<Envelope>>,
    backlog: Vec<VecDeque<Vec<Envelope>>>,
    /// Where this reactor's round of workers starts, so the reactors' first connections
    /// go to different workers.
    offset: usize,
    /// Written frames' buffers, for the next messages copied out for the workers.
    recycled: Recycled,
}

/// The workers' channels, and their doorbells, rung once by each flush that sent a worker
/// batches (none when the events go to an application's own receiver). Each reactor's
/// dispatcher holds a copy.
#[derive(Clone)]
pub(crate) struct WorkerOutlets {
    pub(crate) senders: Vec<Sender<Vec<Envelope>>>,
    pub(crate) bells: Vec<Arc<Doorbell>>,
}

impl Drop for WorkerOutlets {
    /// A worker sleeps until a bell: it must wake to find its channel closed once the
    /// last sender is gone, whoever held it.
    fn drop(&mut self) {
        self.senders.clear();
        for bell in &self.bells {
            bell.ring();
        }
    }
}

impl Queues {
    fn push(&mut self, worker: u16, envelope: Envelope) {
        let w = usize::from(worker);
        if let (Some(batch), Some(unsent)) = (self.batches.get_mut(w), self.unsent.get_mut(w)) {
            *unsent += envelope.cost();
            batch.push(envelope);
        }
    }
}

impl Dispatcher {
    /// A reactor's dispatcher to `outlets`; `reactors` counts the reactors made so far
    /// (shared by all of them), to start each one's round of workers elsewhere.
    pub(crate) fn queued(
        outlets: WorkerOutlets,
        budget: Arc<Budget>,
        reactors: Arc<AtomicUsize>,
    ) -> Dispatcher {
        let n = outlets.senders.len();
        Dispatcher::Queued(Queues {
            outlets,
            budget,
            unsent: vec![0; n],
            batches: (0..n).map(|_| Vec::new()).collect(),
            backlog: (0..n).map(|_| VecDeque::new()).collect(),
            offset: reactors.fetch_add(1, Ordering::Relaxed),
            recycled: Recycled::default(),
        })
    }

    /// The worker of the connection with `generation`. A reactor numbers its
    /// connections one after another, so they go round its workers in turn; the worker
    /// is computed, not stored, so a slab entry does not carry it, and a client
    /// connection keeps it across reconnects with its generation.
    pub(crate) fn worker_of(&self, generation: u64) -> u16 {
        match self {
            Dispatcher::Inline { .. } => 0,
            Dispatcher::Queued(q) => {
                let n = q.outlets.senders.len().max(1) as u64;
                ((generation.wrapping_add(q.offset as u64)) % n) as u16
            }
        }
    }

    /// A whole message still in the reactor's receive buffer: lent to an inline handler,
    /// copied (with room for a reply's frame header) for a worker.
    pub(crate) fn lend(&mut self, worker: u16, id: ConnId, message: MessageRef<'_>) {
        match self {
            Dispatcher::Inline { handler, handle } => handler.on_message_ref(handle, id, message),
            Dispatcher::Queued(q) => {
                let message = wire::owned_in(message, |capacity| q.recycled.take(capacity));
                q.push(worker, Envelope::Message { id, message })
            }
        }
    }

    /// Takes the buffer of a frame the socket has taken whole, to copy a later message
    /// into for a worker (inline handlers borrow messages: nothing to keep it for).
    pub(crate) fn recycle(&mut self, frame: Bytes) {
        if let Dispatcher::Queued(q) = self {
            q.recycled.keep(frame);
        }
    }

    pub(crate) fn emit(&mut self, worker: u16, event: Event) {
        match self {
            Dispatcher::Inline { handler, handle } => deliver(&**handler, handle, event),
            Dispatcher::Queued(q) => q.push(worker, Envelope::of(event)),
        }
    }

    /// Sends a barrier after the connection's events so far; the reactor gets
    /// `Command::BarrierPassed` once they are all handled (and their replies queued).
    pub(crate) fn barrier(&mut self, worker: u16, id: ConnId) {
        match self {
            // The handler already ran; its replies are in the command queue ahead of this.
            Dispatcher::Inline { handle, .. } => handle.barrier_passed(id),
            Dispatcher::Queued(q) => q.push(worker, Envelope::Barrier(id)),
        }
    }

    /// Whether handlers run on the reactor thread.
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self, Dispatcher::Inline { .. })
    }

    /// Whether the worker is over its byte budget or its channel is full, so its
    /// connections should not be read.
    pub(crate) fn is_congested(&self, worker: u16) -> bool {
        match self {
            Dispatcher::Inline { .. } => false,
            Dispatcher::Queued(q) => {
                let w = usize::from(worker);
                let unsent = q.unsent.get(w).copied().unwrap_or(0);
                q.budget.is_over(w, unsent) || q.backlog.get(w).is_some_and(|b| !b.is_empty())
            }
        }
    }

    /// Sends this turn's batches (and any a full channel held back), ringing each worker
    /// that got one. True when a batch went into a worker's channel.
    pub(crate) fn flush(&mut self) -> bool {
        let Dispatcher::Queued(q) = self else { return false };
        let mut handed = false;
        for (w, sender) in q.outlets.senders.iter().enumerate() {
            let backlog = &mut q.backlog[w];
            let batch = if q.batches[w].is_empty() {
                Vec::new()
            } else {
                std::mem::replace(&mut q.batches[w], q.budget.spare_batch())
            };
            // Counted before the worker can see the batch and subtract it.
            q.budget.add(w, std::mem::take(&mut q.unsent[w]));
            if !batch.is_empty() {
                backlog.push_back(batch);
            }
            let mut sent = false;
            while let Some(batch) = backlog.pop_front() {
                match sender.try_send(batch) {
                    Ok(()) => sent = true,
                    Err(TrySendError::Full(batch)) => {
                        backlog.push_front(batch);
                        break;
                    }
                    // The worker is gone (the handler panicked); nothing will read these.
                    Err(TrySendError::Disconnected(_)) => backlog.clear(),
                }
            }
            if sent && let Some(bell) = q.outlets.bells.get(w) {
                bell.ring();
            }
            handed |= sent;
        }
        handed
    }

    /// Frees the batch buffers a burst left: the kept spares, and this reactor's empty
    /// batches grown past a few entries. For a reactor that has gone idle.
    pub(crate) fn release_spares(&mut self) {
        /// Entries an empty batch may keep room for (448 bytes).
        const KEPT_ROOM: usize = 8;
        let Dispatcher::Queued(q) = self else { return };
        q.budget.spares.release();
        q.recycled.release();
        for batch in &mut q.batches {
            if batch.is_empty() && batch.capacity() > KEPT_ROOM {
                *batch = Vec::new();
            }
        }
    }

    /// Whether any batch still waits for room in a channel.
    pub(crate) fn has_backlog(&self) -> bool {
        match self {
            Dispatcher::Inline { .. } => false,
            Dispatcher::Queued(q) => q.backlog.iter().any(|b| !b.is_empty()),
        }
    }
}

/// The events of a server started with [`Server::start_with_events`](crate::Server::start_with_events),
/// in per-connection order. Ends (`recv` returns `None`) after shutdown, once every
/// `Disconnect` has been received.
pub struct Events {
    batches: Receiver<Vec<Envelope>>,
    budget: Arc<Budget>,
    pending: std::vec::IntoIter<Envelope>,
    handle: Handle,
}

impl Events {
    pub(crate) fn new(
        batches: Receiver<Vec<Envelope>>,
        budget: Arc<Budget>,
        handle: Handle,
    ) -> Events {
        Events { batches, budget, pending: Vec::new().into_iter(), handle }
    }

    /// The next event already received, handing barriers back on the way.
    fn next_pending(&mut self) -> Option<Event> {
        for envelope in self.pending.by_ref() {
            self.budget.sub(0, envelope.cost());
            match envelope.open() {
                Ok(event) => return Some(event),
                Err(barrier) => self.handle.barrier_passed(barrier),
            }
        }
        None
    }

    /// The next event, waiting for it; `None` once the server has stopped.
    pub fn recv(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.next_pending() {
                return Some(event);
            }
            self.pending = self.batches.recv().ok()?.into_iter();
        }
    }

    /// The next event, waiting at most `timeout`; `None` on timeout or when stopped.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.next_pending() {
                return Some(event);
            }
            match self.batches.recv_deadline(deadline) {
                Ok(batch) => self.pending = batch.into_iter(),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.next_pending() {
                return Some(event);
            }
            match self.batches.try_recv() {
                Ok(batch) => self.pending = batch.into_iter(),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return None,
            }
        }
    }
}

impl Iterator for Events {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_entries_stay_small() {
        // A batch holds thousands of these; ConnectInfo alone is several times larger.
        assert!(std::mem::size_of::<Envelope>() <= 56, "{}", std::mem::size_of::<Envelope>());
        assert!(std::mem::size_of::<ConnectInfo>() > 100);
    }

    #[test]
    fn the_budget_counts_what_waits_until_it_is_handled() {
        let budget = Arc::new(Budget::new(1, 1000));
        let message = |len| Envelope::Message {
            id: ConnId::new(0, 1, 0),
            message: Message::Binary(vec![0; len]),
        };
        // Empty messages cost their entry and allocation: a flood of them is bounded.
        let empty = message(0).cost();
        assert!(empty >= 80, "{empty}");
        budget.add(0, empty);
        assert!(!budget.is_over(0, 0));
        assert!(budget.is_over(0, message(2000).cost()), "unsent bytes count too");
        budget.add(0, message(2000).cost());
        assert!(budget.is_over(0, 0));
        budget.sub(0, message(2000).cost());
        budget.sub(0, empty);
        assert_eq!(budget.queued(0), 0);
    }
}
