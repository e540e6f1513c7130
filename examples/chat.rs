//! Chat rooms in an embedding application: `cargo run --example chat`, then connect to
//! `ws://127.0.0.1:9002/?room=lobby&name=ada` from several browser tabs or clients.
//!
//! The room and name come from the query string, checked by the upgrade hook (which
//! could as well check an auth token) and carried to the handler as user data. Every
//! text message is published to the sender's room, except back to the sender.

use std::collections::HashMap;

use parking_lot::Mutex;
use wsloop::{
    Accept, Config, ConnId, ConnectInfo, DisconnectReason, Handle, Handler, Message, Reject, Server,
};

/// Who a connection is: from the query string.
struct Member {
    room: String,
    name: String,
}

fn parse_query(query: &str) -> Option<Member> {
    let mut room = None;
    let mut name = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("room", v)) if !v.is_empty() && v.len() <= 32 => room = Some(v.to_owned()),
            Some(("name", v)) if !v.is_empty() && v.len() <= 32 => name = Some(v.to_owned()),
            _ => {}
        }
    }
    Some(Member { room: room?, name: name? })
}

#[derive(Default)]
struct Rooms {
    members: Mutex<HashMap<ConnId, Member>>,
}

impl Handler for Rooms {
    fn on_connect(&self, handle: &Handle, info: ConnectInfo) {
        let Some(member) = info.user_data.and_then(|d| d.downcast::<Member>().ok()) else { return };
        let topic = format!("room:{}", member.room);
        if handle.subscribe(info.id, &topic).is_ok() {
            handle.publish_except(&topic, format!("{} joined", member.name), info.id);
            self.members.lock().insert(info.id, *member);
        }
    }

    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let Message::Text(text) = message else { return };
        let members = self.members.lock();
        let Some(member) = members.get(&id) else { return };
        let line = format!("{}: {text}", member.name);
        handle.publish_except(&format!("room:{}", member.room), line, id);
    }

    fn on_disconnect(&self, handle: &Handle, id: ConnId, _: DisconnectReason) {
        // The subscription ended with the connection; tell the others.
        if let Some(member) = self.members.lock().remove(&id) {
            handle.publish(&format!("room:{}", member.room), format!("{} left", member.name));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::default().addr("127.0.0.1:9002").max_topics_per_connection(1).on_upgrade(
        |request| match parse_query(request.query()) {
            Some(member) => Ok(Accept::new().with_user_data(Box::new(member))),
            None => Err(Reject::with_status(400)),
        },
    );
    let server = Server::start(config, Rooms::default())?;
    println!("chat on ws://{}/?room=lobby&name=you", server.local_addr());
    server.join();
    Ok(())
}
