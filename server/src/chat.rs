//! The `/chat` protocol: JSON messages, rooms as topics.
//!
//! client → `{"type":"join","room":R}`, `{"type":"leave","room":R}`,
//! `{"type":"message","room":R,"content":C}`, `{"type":"direct","to":ID,"content":C}` (to
//! one connection, on any node);
//! server → `{"type":"system","message":M}` on connect, `{"type":"joined","room":R}`,
//! `{"type":"left","room":R}`, `{"type":"direct","content":C,"from":ID}`, `{"type":"message","room":R,"content":C,"from":ID}` to the
//! room's other members, `{"type":"error","message":M}` for anything malformed or over a
//! limit (the connection stays open), `{"type":"resync","room":R}` when messages from
//! other nodes of a cluster may have been lost.

use serde::{Deserialize, Serialize};
use wsloop::{ConnId, Handle, Message};

/// Longest room name accepted, in bytes.
const MAX_ROOM: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Request {
    Join { room: String },
    Leave { room: String },
    Message { room: String, content: String },
    Direct { to: String, content: String },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Reply<'a> {
    System { message: &'a str },
    Joined { room: &'a str },
    Left { room: &'a str },
    Message { room: &'a str, content: &'a str, from: String },
    Error { message: &'a str },
    Resync { room: &'a str },
    Direct { content: &'a str, from: String },
}

impl Reply<'_> {
    fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn topic(room: &str) -> String {
    format!("chat:{room}")
}

/// Sends `content` to one connection, on any node of a cluster.
fn direct(handle: &Handle, id: ConnId, to: &str, content: &str) {
    let error = match to.parse::<ConnId>() {
        Err(_) => "`to` is a connection id (hex, as in the welcome message)".to_owned(),
        Ok(to) => {
            let text = Reply::Direct { content, from: id.to_string() }.to_text();
            match handle.send(to, text) {
                Ok(()) => return,
                Err(e) => e.to_string(),
            }
        }
    };
    let _ = handle.send(id, Reply::Error { message: &error }.to_text());
}

/// Tells this node's members of a room that messages from other nodes may have been lost.
pub fn resync(handle: &Handle, topic: &str) {
    if let Some(room) = topic.strip_prefix("chat:") {
        handle.publish_local(topic, Reply::Resync { room }.to_text());
    }
}

/// Greets a new chat connection.
pub fn welcome(handle: &Handle, id: ConnId) {
    let text = format!("welcome {id}; join a room with {{\"type\":\"join\",\"room\":\"lobby\"}}");
    let _ = handle.send(id, Reply::System { message: &text }.to_text());
}

/// Handles one message from a chat connection.
pub fn on_message(handle: &Handle, id: ConnId, message: Message) {
    let reply = |r: Reply| {
        let _ = handle.send(id, r.to_text());
    };
    let Message::Text(text) = message else {
        return reply(Reply::Error { message: "chat messages are JSON text" });
    };
    let request = match serde_json::from_str::<Request>(&text) {
        Ok(r) => r,
        Err(e) => return reply(Reply::Error { message: &format!("malformed request: {e}") }),
    };
    let room = match &request {
        Request::Join { room } | Request::Leave { room } | Request::Message { room, .. } => room,
        Request::Direct { to, content } => return direct(handle, id, to, content),
    };
    if room.is_empty() || room.len() > MAX_ROOM {
        return reply(Reply::Error { message: "room names are 1 to 64 bytes" });
    }
    let topic = topic(room);
    match &request {
        Request::Join { .. } => match handle.subscribe(id, &topic) {
            Ok(()) => reply(Reply::Joined { room }),
            Err(e) => reply(Reply::Error { message: &e.to_string() }),
        },
        Request::Leave { .. } if handle.unsubscribe(id, &topic) => reply(Reply::Left { room }),
        Request::Leave { .. } => reply(Reply::Error { message: "not in that room" }),
        Request::Message { content, .. } => {
            if !handle.topics_of(id).contains(&topic) {
                return reply(Reply::Error { message: "join the room first" });
            }
            let out = Reply::Message { room, content, from: id.to_string() }.to_text();
            handle.publish_except(&topic, out, id);
        }
        Request::Direct { .. } => {} // answered above
    }
}
