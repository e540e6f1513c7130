//! The demo server's routes, by request path: `/` and `/echo` echo, `/broadcast` fans
//! every message out to every `/broadcast` connection (the sender included), `/chat` is
//! a JSON chat with rooms.

use std::collections::HashMap;

use parking_lot::RwLock;
use wsloop::{
    Accept, ConnId, ConnectInfo, DisconnectReason, Handle, Handler, Message, Reject, Request,
};

use crate::chat;

/// The topic every `/broadcast` connection is in.
const BROADCAST: &str = "broadcast";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
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

/// Routes events by the path each connection opened with. Echo connections are not
/// recorded, so the echo path takes one shard read lock per message and nothing else.
pub struct Demo {
    shards: Box<[RwLock<HashMap<ConnId, Route>>]>,
}

impl Demo {
    pub fn new() -> Demo {
        Demo { shards: (0..64).map(|_| RwLock::new(HashMap::new())).collect() }
    }

    fn shard(&self, id: ConnId) -> &RwLock<HashMap<ConnId, Route>> {
        // Fibonacci hashing: the top bits of the product spread sequential ids.
        let top = id.as_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        &self.shards[top as usize % self.shards.len()]
    }

    fn route(&self, id: ConnId) -> Option<Route> {
        self.shard(id).read().get(&id).copied()
    }
}

impl Handler for Demo {
    fn on_connect(&self, handle: &Handle, info: ConnectInfo) {
        let route = match info.path.as_str() {
            "/broadcast" => Route::Broadcast,
            "/chat" => Route::Chat,
            _ => return,
        };
        self.shard(info.id).write().insert(info.id, route);
        if route == Route::Chat {
            chat::welcome(handle, info.id);
        }
    }

    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        match self.route(id) {
            None => {
                let _ = handle.send(id, message);
            }
            Some(Route::Broadcast) => {
                handle.publish(BROADCAST, message);
            }
            Some(Route::Chat) => chat::on_message(handle, id, message),
        }
    }

    fn on_disconnect(&self, _: &Handle, id: ConnId, _: DisconnectReason) {
        self.shard(id).write().remove(&id);
    }
}
