//! The `/chat` protocol: JSON messages, rooms as topics.
//!
//! client → `{"type":"join","room":R}`, `{"type":"leave","room":R}`,
//! `{"type":"message","room":R,"content":C}`;
//! server → `{"type":"system","message":M}` on connect, `{"type":"joined","room":R}`,
//! `{"type":"left","room":R}`, `{"type":"message","room":R,"content":C,"from":ID}` to the
//! room's other members, `{"type":"error","message":M}` for anything malformed or over a
//! limit (the connection stays open).

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
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Reply<'a> {
    System { message: &'a str },
    Joined { room: &'a str },
    Left { room: &'a str },
    Message { room: &'a str, content: &'a str, from: String },
    Error { message: &'a str },
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
    }
}
