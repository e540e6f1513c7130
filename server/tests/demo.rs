//! The `wsloop` binary's demo routes, as a child process: `/chat` rooms and `/broadcast`
//! fan-out to 10,000 subscribers.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::Message as WsMessage;
use util::*;

fn chat(addr: std::net::SocketAddr) -> Client {
    let mut c = connect_path(addr, "/chat");
    let hello = json_of(&mut c);
    assert_eq!(hello["type"], "system", "{hello}");
    c
}

fn json_of(c: &mut Client) -> Value {
    match next_message(c) {
        WsMessage::Text(t) => serde_json::from_str(&t).expect("server sends JSON"),
        other => panic!("expected text, got {other:?}"),
    }
}

fn say(c: &mut Client, v: Value) {
    c.send(WsMessage::text(v.to_string())).unwrap();
}

#[test]
fn chat_rooms_speak_the_json_protocol() {
    let _w = Watchdog::new("chat", Duration::from_secs(60));
    let (_server, addr) = start_binary(&["--max-topics-per-connection", "3"]);
    let (mut alice, mut bob, mut carol) = (chat(addr), chat(addr), chat(addr));
    for c in [&mut alice, &mut bob] {
        say(c, json!({"type": "join", "room": "lobby"}));
        assert_eq!(json_of(c), json!({"type": "joined", "room": "lobby"}));
    }
    say(&mut alice, json!({"type": "message", "room": "lobby", "content": "hi bob"}));
    let got = json_of(&mut bob);
    assert_eq!(
        (got["type"].as_str(), got["room"].as_str(), got["content"].as_str()),
        (Some("message"), Some("lobby"), Some("hi bob"))
    );
    assert!(got["from"].as_str().is_some_and(|s| !s.is_empty()));

    // Not in the room: an error, and the connection stays open.
    say(&mut carol, json!({"type": "message", "room": "lobby", "content": "let me in"}));
    assert_eq!(json_of(&mut carol)["type"], "error");
    for bad in ["not json", "{\"type\":\"dance\"}", "{\"type\":\"join\"}", "[1,2]"] {
        carol.send(WsMessage::text(bad)).unwrap();
        let reply = json_of(&mut carol);
        assert_eq!(reply["type"], "error", "{bad} → {reply}");
    }
    carol.send(WsMessage::binary(vec![1u8, 2])).unwrap();
    assert_eq!(json_of(&mut carol)["type"], "error");
    say(&mut carol, json!({"type": "join", "room": ""}));
    assert_eq!(json_of(&mut carol)["type"], "error");
    // Over the room limit.
    for room in ["a", "b", "c"] {
        say(&mut carol, json!({"type": "join", "room": room}));
        assert_eq!(json_of(&mut carol)["type"], "joined");
    }
    say(&mut carol, json!({"type": "join", "room": "d"}));
    let over = json_of(&mut carol);
    assert_eq!(over["type"], "error");
    assert!(over["message"].as_str().unwrap().contains("max_topics_per_connection"), "{over}");
    // Leaving.
    say(&mut bob, json!({"type": "leave", "room": "lobby"}));
    assert_eq!(json_of(&mut bob), json!({"type": "left", "room": "lobby"}));
    say(&mut bob, json!({"type": "leave", "room": "lobby"}));
    assert_eq!(json_of(&mut bob)["type"], "error");
    say(&mut alice, json!({"type": "message", "room": "lobby", "content": "anyone?"}));
    // Alice's messages are handled in order, so once her next one is answered, "anyone?"
    // has been published; only then may bob rejoin (or he could rightly receive it).
    alice.send(WsMessage::text("not json")).unwrap();
    assert_eq!(json_of(&mut alice)["type"], "error");
    say(&mut bob, json!({"type": "join", "room": "lobby"}));
    assert_eq!(json_of(&mut bob)["type"], "joined", "bob got nothing from the room after leaving");
    // The sender never hears its own message.
    say(&mut alice, json!({"type": "join", "room": "a"}));
    assert_eq!(json_of(&mut alice)["type"], "joined");
}

#[test]
fn by_default_one_chat_connection_joins_at_most_64_rooms() {
    let _w = Watchdog::new("chat_default_limit", Duration::from_secs(60));
    let (_server, addr) = start_binary(&[]);
    let mut c = chat(addr);
    for i in 0..64 {
        say(&mut c, json!({"type": "join", "room": format!("r{i}")}));
        assert_eq!(json_of(&mut c)["type"], "joined", "room {i}");
    }
    say(&mut c, json!({"type": "join", "room": "one too many"}));
    let over = json_of(&mut c);
    assert!(over["message"].as_str().is_some_and(|m| m.contains("max_topics_per_connection")));
}

#[test]
fn ten_thousand_broadcast_subscribers_get_every_message_in_order() {
    let _w = Watchdog::new("broadcast_10k", Duration::from_secs(180));
    let _turn = many_sockets();
    let (_server, addr) = start_binary(&[]);
    let head = request(addr, "").replace("GET / ", "GET /broadcast ");
    let mut subscribers = open_many(addr, &head, 10_000, 500, |_, _| {});
    let mut sender = connect_path(addr, "/broadcast");
    // `/broadcast` joins its topic before the 101, so every subscriber is in already:
    // nothing waits here for the subscriptions to settle.
    let started = Instant::now();
    for i in 0..100 {
        sender.send(WsMessage::text(format!("m{i:03}"))).unwrap();
    }
    let chunks: Vec<Vec<std::net::TcpStream>> = {
        let mut chunks = Vec::new();
        while !subscribers.is_empty() {
            let rest = subscribers.split_off(subscribers.len().saturating_sub(2500));
            chunks.push(rest);
        }
        chunks
    };
    let readers: Vec<_> = chunks
        .into_iter()
        .map(|mut chunk| {
            std::thread::spawn(move || {
                for s in &mut chunk {
                    for i in 0..100 {
                        let expected = format!("m{i:03}").into_bytes();
                        assert_eq!(read_frame(s), Some((true, 0x1, expected)));
                    }
                }
                chunk.len()
            })
        })
        .collect();
    let received: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(received, 10_000);
    for i in 0..100 {
        assert_eq!(next_message(&mut sender), WsMessage::text(format!("m{i:03}")));
    }
    println!(
        "broadcast: 10,000 subscribers × 100 messages delivered in order in {:?}",
        started.elapsed()
    );
}

#[test]
fn memory_per_subscription_with_10k_connections_in_10_topics_each() {
    let _w = Watchdog::new("subscription_memory", Duration::from_secs(180));
    let _turn = many_sockets();
    let (server, addr) = start_binary(&[]);
    let head = request(addr, "").replace("GET / ", "GET /chat ");
    let mut conns = open_many(addr, &head, 10_000, 500, |s, _| {
        assert_eq!(read_frame(s).map(|f| f.1), Some(0x1), "welcome");
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = proc_bytes(server.pid(), "VmRSS:");
    for s in &mut conns {
        let joins: Vec<u8> = (0..10)
            .flat_map(|r| {
                masked(true, 0x1, format!(r#"{{"type":"join","room":"room{r}"}}"#).as_bytes())
            })
            .collect();
        s.write_all(&joins).unwrap();
    }
    for s in &mut conns {
        for r in 0..10 {
            let (_, _, payload) = read_frame(s).expect("joined");
            assert_eq!(payload, format!(r#"{{"type":"joined","room":"room{r}"}}"#).into_bytes());
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = proc_bytes(server.pid(), "VmRSS:");
    let per_subscription = after.saturating_sub(before) / 100_000;
    println!(
        "subscriptions: 10,000 connections × 10 topics; server RSS {} KiB before, {} KiB after: \
         {per_subscription} bytes per subscription",
        before / 1024,
        after / 1024
    );
    assert!(per_subscription < 256, "{per_subscription} bytes per subscription");
}
