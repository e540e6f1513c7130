//! Typed per-connection state for a handler, with no lock: a connection's events are all
//! handled on one thread (its worker, or its reactor in inline dispatch), so its state
//! lives in a map owned by that thread.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::dispatch::Handler;
use crate::event::{ConnId, ConnectInfo, DisconnectReason, Message};
use crate::handle::Handle;

/// A handler that keeps a `State` per connection: made by `on_connect`, handed by
/// `&mut` to every later callback of that connection, and given back by value to
/// `on_disconnect`, after which it is dropped. Run it with [`WithState`].
///
/// # Examples
/// ```no_run
/// use wsloop::{Config, ConnId, ConnectInfo, Handle, Message, Server, StatefulHandler, WithState};
///
/// /// Counts each connection's messages and echoes the count.
/// struct Counter;
/// impl StatefulHandler for Counter {
///     type State = u64;
///     fn on_connect(&self, _: &Handle, _: ConnectInfo) -> u64 {
///         0
///     }
///     fn on_message(&self, handle: &Handle, seen: &mut u64, id: ConnId, _: Message) {
///         *seen += 1;
///         let _ = handle.send(id, seen.to_string());
///     }
/// }
///
/// let server = Server::start(Config::default(), WithState::new(Counter))?;
/// # Ok::<(), wsloop::Error>(())
/// ```
pub trait StatefulHandler: Send + Sync + 'static {
    /// What the handler keeps per connection. It never crosses threads, so it need not
    /// be `Send` (an `Rc` or a `RefCell` is fine).
    type State: 'static;

    /// A connection completed its handshake: make its state.
    fn on_connect(&self, handle: &Handle, info: ConnectInfo) -> Self::State;

    /// A message arrived.
    fn on_message(&self, handle: &Handle, state: &mut Self::State, id: ConnId, message: Message);

    /// A write queue that had filled has emptied (only with `Config::drain_events`).
    fn on_drain(&self, handle: &Handle, state: &mut Self::State, id: ConnId) {
        let _ = (handle, state, id);
    }

    /// The connection ended; its state is handed back for the last time.
    fn on_disconnect(
        &self,
        handle: &Handle,
        state: Self::State,
        id: ConnId,
        reason: DisconnectReason,
    ) {
        let _ = (handle, state, id, reason);
    }
}

/// Runs a [`StatefulHandler`] as a [`Handler`]. Each handling thread keeps the states of
/// its connections in its own map: one hash lookup per event, no lock, no `Send` bound.
pub struct WithState<H> {
    inner: H,
    /// This adapter's slot in each thread's table.
    key: usize,
}

/// Keys of adapters, so several servers in one process keep apart.
static NEXT_KEY: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Per adapter key: a `HashMap<ConnId, H::State>`, boxed as `Any`. Dropped with the
    /// thread, so states still held at shutdown are dropped too.
    static STATES: RefCell<Vec<Option<Box<dyn Any>>>> = const { RefCell::new(Vec::new()) };
}

impl<H: StatefulHandler> WithState<H> {
    /// Wraps `handler`.
    pub fn new(handler: H) -> WithState<H> {
        WithState { inner: handler, key: NEXT_KEY.fetch_add(1, Ordering::Relaxed) }
    }

    /// The handler inside.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// Runs `f` with this thread's map of states. The map is taken out of the table for
    /// the call, so the handler's code runs with no borrow held.
    fn with_states<R>(&self, f: impl FnOnce(&mut HashMap<ConnId, H::State>) -> R) -> R {
        let taken =
            STATES.with(|table| table.borrow_mut().get_mut(self.key).and_then(Option::take));
        let mut states = taken
            .and_then(|boxed| boxed.downcast::<HashMap<ConnId, H::State>>().ok())
            .unwrap_or_default();
        let result = f(&mut states);
        STATES.with(|table| {
            let mut table = table.borrow_mut();
            if table.len() <= self.key {
                table.resize_with(self.key + 1, || None);
            }
            table[self.key] = Some(states);
        });
        result
    }
}

impl<H: StatefulHandler> Handler for WithState<H> {
    fn on_connect(&self, handle: &Handle, info: ConnectInfo) {
        let id = info.id;
        let state = self.inner.on_connect(handle, info);
        self.with_states(|states| states.insert(id, state));
    }

    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        self.with_states(|states| {
            if let Some(state) = states.get_mut(&id) {
                self.inner.on_message(handle, state, id, message);
            }
        });
    }

    fn on_drain(&self, handle: &Handle, id: ConnId) {
        self.with_states(|states| {
            if let Some(state) = states.get_mut(&id) {
                self.inner.on_drain(handle, state, id);
            }
        });
    }

    fn on_disconnect(&self, handle: &Handle, id: ConnId, reason: DisconnectReason) {
        if let Some(state) = self.with_states(|states| states.remove(&id)) {
            self.inner.on_disconnect(handle, state, id, reason);
        }
    }
}
