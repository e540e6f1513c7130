//! The demo server's routes, by request path: `/` and `/echo` echo, `/broadcast` fans
//! every message out to every `/broadcast` connection (the sender included), `/chat` is
//! a JSON chat with rooms.

use wsloop::{
    Accept, ClusterEvent, ConnId, ConnectInfo, Handle, Message, Reject, Request, StatefulHandler,
    WithState,
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

/// Routes events by the path each connection opened with, kept as the connection's
/// state: no shared map, no lock.
pub struct Demo;

impl Demo {
    /// The demo as a server handler.
    pub fn handler() -> WithState<Demo> {
        WithState::new(Demo)
    }
}

impl StatefulHandler for Demo {
    type State = Route;

    fn on_connect(&self, handle: &Handle, info: ConnectInfo) -> Route {
        let route = match info.path.as_str() {
            "/broadcast" => Route::Broadcast,
            "/chat" => Route::Chat,
            _ => Route::Echo,
        };
        if route == Route::Chat {
            chat::welcome(handle, info.id);
        }
        route
    }

    fn on_message(&self, handle: &Handle, route: &mut Route, id: ConnId, message: Message) {
        match route {
            Route::Echo => {
                let _ = handle.send(id, message);
            }
            Route::Broadcast => {
                handle.publish(BROADCAST, message);
            }
            Route::Chat => chat::on_message(handle, id, message),
        }
    }
}
