//! The demo server's routes, by request path: `/` and `/echo` echo, `/broadcast` fans
//! every message out to every `/broadcast` connection (the sender included), `/chat` is
//! a JSON chat with rooms.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use wsloop::{
    Accept, ClusterEvent, ConnId, ConnectInfo, DisconnectReason, Handle, Handler, Message,
    MessageRef, Reject, Request,
};

use crate::chat;

/// The topic every `/broadcast` connection is in.
const BROADCAST: &str = "broadcast";

/// What a connection does with its messages, by the path it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Echo,
    Broadcast,
    Chat,
}

/// The upgrade hook: `/broadcast` connections join their topic before the 101, so none
/// misses a message sent after its handshake.
pub fn upgrade(request: &Request) -> Result<Accept, Reject> {
    Ok(match request.path() {
        "/broadcast" => Accept::new().subscribe(BROADCAST),
        _ => Accept::new(),
    })
}

/// What the demo does with cluster events: logs each one (a line per event, for
/// operators and tests), and tells chat rooms that may have missed messages from other
/// nodes, so clients can reload.
pub fn on_cluster_event(handle: &Handle, event: ClusterEvent) {
    match &event {
        ClusterEvent::Resync { topic } => {
            log::warn!("cluster: resync topic {topic}");
            chat::resync(handle, topic);
        }
        other => log::info!("cluster: {other:?}"),
    }
}

/// Routes events by the path each connection opened with. Echo, the route benchmarks
/// measure, is the default and is not recorded: an echo connection costs the demo no
/// memory, and its messages a lookup in a map that holds only the other routes.
pub struct Demo;

thread_local! {
    /// The handling thread's non-echo connections. A connection's events all reach the
    /// same thread (its reactor, or its worker), so no lock is needed.
    /// Initialised at compile time: the echo route's lookup in the empty map checks
    /// nothing else.
    static ROUTES: RefCell<BTreeMap<ConnId, Route>> = const { RefCell::new(BTreeMap::new()) };
    /// How many entries `ROUTES` holds: a thread with only echo connections answers
    /// from this alone (a `Cell` without destructor, the cheapest thread-local to read).
    static OTHER_ROUTES: Cell<usize> = const { Cell::new(0) };
}

impl Demo {
    /// The demo as a server handler.
    pub fn handler() -> Demo {
        Demo
    }

    #[inline]
    fn route(id: ConnId) -> Route {
        if OTHER_ROUTES.get() == 0 {
            return Route::Echo;
        }
        ROUTES.with(|routes| routes.borrow().get(&id).copied()).unwrap_or(Route::Echo)
    }

    /// Changes this thread's routes with `change`, keeping `OTHER_ROUTES` in step.
    fn change_routes(change: impl FnOnce(&mut BTreeMap<ConnId, Route>)) {
        ROUTES.with(|routes| {
            let mut routes = routes.borrow_mut();
            change(&mut routes);
            OTHER_ROUTES.set(routes.len());
        });
    }
}

impl Handler for Demo {
    fn on_connect(&self, handle: &Handle, info: ConnectInfo) {
        let route = match info.path.as_str() {
            "/broadcast" => Route::Broadcast,
            "/chat" => Route::Chat,
            _ => return,
        };
        Demo::change_routes(|routes| {
            routes.insert(info.id, route);
        });
        if route == Route::Chat {
            chat::welcome(handle, info.id);
        }
    }

    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        match Demo::route(id) {
            Route::Echo => {
                let _ = handle.send(id, message);
            }
            Route::Broadcast => {
                handle.publish(BROADCAST, message);
            }
            Route::Chat => chat::on_message(handle, id, message),
        }
    }

    /// Echo answers from the lent message, with no allocation (inline dispatch); the
    /// other routes keep an owned copy.
    fn on_message_ref(&self, handle: &Handle, id: ConnId, message: MessageRef<'_>) {
        match Demo::route(id) {
            Route::Echo => {
                let _ = handle.send_ref(id, message);
            }
            _ => self.on_message(handle, id, message.to_message()),
        }
    }

    fn on_disconnect(&self, _: &Handle, id: ConnId, _: DisconnectReason) {
        Demo::change_routes(|routes| {
            routes.remove(&id);
        });
    }
}
