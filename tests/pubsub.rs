//! Topics over real sockets: fan-out across reactors, order, exclusion, limits, cleanup.

mod util;

use std::time::{Duration, Instant};

use tungstenite::Message as WsMessage;
use util::*;
use wsloop::{ConnId, Event, Server, SubscribeError};

/// Opens `n` clients and returns them with their ids, in connect order.
fn clients(server: &Server, events: &mut wsloop::Events, n: usize) -> Vec<(Client, ConnId)> {
    (0..n)
        .map(|_| {
            let client = connect(server.local_addr());
            match events.recv_timeout(Duration::from_secs(5)) {
                Some(Event::Connect(info)) => (client, info.id),
                other => panic!("expected connect, got {other:?}"),
            }
        })
        .collect()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn members_on_every_reactor_get_each_publish_once_in_order() {
    let _w = Watchdog::new("fanout_order", Duration::from_secs(60));
    let (server, mut events) = Server::start_with_events(config()).unwrap();
    let handle = server.handle();
    let mut members = clients(&server, &mut events, 40);
    let reactors: std::collections::HashSet<usize> =
        members.iter().map(|(_, id)| id.reactor()).collect();
    assert_eq!(reactors.len(), 2, "members on both reactors");
    for (_, id) in &members {
        handle.subscribe(*id, "news").unwrap();
    }
    assert_eq!(handle.topic_size("news"), 40);
    let mut outsider = connect(server.local_addr());
    for i in 0..200 {
        assert_eq!(handle.publish("news", format!("n{i}")), 40);
    }
    for (client, _) in &mut members {
        for i in 0..200 {
            assert_eq!(next_message(client), WsMessage::text(format!("n{i}")));
        }
    }
    // Exactly once: nothing more is waiting for anyone, and non-members got nothing.
    handle.publish("news", "end");
    for (client, _) in &mut members {
        assert_eq!(next_message(client), WsMessage::text("end"));
    }
    handle.send_many(&[], "nothing");
    outsider.send(WsMessage::text("x")).unwrap();
    set_short_timeout(&outsider);
    assert!(outsider.read().is_err(), "non-members receive nothing");
}

#[test]
fn publish_except_skips_the_sender_and_topics_are_listed() {
    let _w = Watchdog::new("publish_except", Duration::from_secs(30));
    let (server, mut events) = Server::start_with_events(config()).unwrap();
    let handle = server.handle();
    let mut cs = clients(&server, &mut events, 3);
    for (_, id) in &cs {
        handle.subscribe(*id, "room").unwrap();
    }
    handle.subscribe(cs[0].1, "other").unwrap();
    let mut topics = handle.topics_of(cs[0].1);
    topics.sort();
    assert_eq!(topics, vec!["other", "room"]);
    let mut members = handle.connections_of("room");
    members.sort();
    let mut expected: Vec<ConnId> = cs.iter().map(|c| c.1).collect();
    expected.sort();
    assert_eq!(members, expected);

    assert_eq!(handle.publish_except("room", "hi", cs[0].1), 3);
    assert_eq!(next_message(&mut cs[1].0), WsMessage::text("hi"));
    assert_eq!(next_message(&mut cs[2].0), WsMessage::text("hi"));
    // The sender's next message is the direct one, not "hi".
    handle.send(cs[0].1, "direct").unwrap();
    assert_eq!(next_message(&mut cs[0].0), WsMessage::text("direct"));

    assert!(handle.unsubscribe(cs[1].1, "room"));
    assert!(!handle.unsubscribe(cs[1].1, "room"));
    assert_eq!(handle.topic_size("room"), 2);
}

#[test]
fn limits_return_errors_that_name_them() {
    let _w = Watchdog::new("pubsub_limits", Duration::from_secs(30));
    let config = config().max_topics_per_connection(2).max_subscribers_per_topic(2);
    let (server, mut events) = Server::start_with_events(config).unwrap();
    let handle = server.handle();
    let cs = clients(&server, &mut events, 3);
    handle.subscribe(cs[0].1, "a").unwrap();
    handle.subscribe(cs[0].1, "b").unwrap();
    assert_eq!(handle.subscribe(cs[0].1, "c"), Err(SubscribeError::TooManyTopics { limit: 2 }));
    handle.subscribe(cs[1].1, "a").unwrap();
    assert_eq!(
        handle.subscribe(cs[2].1, "a"),
        Err(SubscribeError::TooManySubscribers { limit: 2 })
    );
    assert!(
        SubscribeError::TooManySubscribers { limit: 2 }
            .to_string()
            .contains("max_subscribers_per_topic")
    );
}

#[test]
fn disconnect_removes_memberships_and_empty_topics() {
    let _w = Watchdog::new("pubsub_cleanup", Duration::from_secs(30));
    let (server, mut events) = Server::start_with_events(config()).unwrap();
    let handle = server.handle();
    let mut cs = clients(&server, &mut events, 2);
    handle.subscribe(cs[0].1, "t").unwrap();
    handle.subscribe(cs[1].1, "t").unwrap();
    handle.subscribe(cs[1].1, "solo").unwrap();
    assert_eq!(handle.stats().topics, 2);
    let (mut gone, gone_id) = cs.pop().unwrap();
    gone.close(None).unwrap();
    while gone.read().is_ok() {}
    wait_until("membership dropped", || handle.topic_size("t") == 1);
    assert_eq!(handle.topic_size("solo"), 0);
    assert_eq!(handle.stats().topics, 1, "the empty topic is gone");
    assert!(handle.topics_of(gone_id).is_empty());
    assert_eq!(handle.subscribe(gone_id, "t"), Err(SubscribeError::UnknownConnection));
}

#[test]
fn upgrade_hook_subscribes_before_the_101() {
    let _w = Watchdog::new("hook_subscribe", Duration::from_secs(30));
    let config = config().max_subscribers_per_topic(2).on_upgrade(|request| {
        Ok(match request.path() {
            "/live" => wsloop::Accept::new().subscribe("all").subscribe("live"),
            _ => wsloop::Accept::new(),
        })
    });
    let (server, mut events) = Server::start_with_events(config).unwrap();
    let handle = server.handle();
    let mut first = connect_path(server.local_addr(), "/live");
    // Nothing has read the Connect event, so only the hook can have joined; the
    // handshake is done, so the membership must already be there.
    assert_eq!(handle.publish("live", "right away"), 1);
    assert_eq!(next_message(&mut first), WsMessage::text("right away"));
    let _plain = connect(server.local_addr());
    let plain = clients_connected(&mut events, 2)[1];
    handle.subscribe(plain, "live").unwrap();
    assert_eq!((handle.topic_size("all"), handle.topic_size("live")), (1, 2));
    // The next /live joins "all", then "live" is full: refused with 503, and the join
    // of "all" is undone.
    let head = request(server.local_addr(), "").replace("GET / ", "GET /live ");
    let answer = http_exchange(server.local_addr(), head.as_bytes());
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert_eq!((handle.topic_size("all"), handle.topic_size("live")), (1, 2));
}

fn clients_connected(events: &mut wsloop::Events, n: usize) -> Vec<ConnId> {
    (0..n)
        .map(|_| match events.recv_timeout(Duration::from_secs(5)) {
            Some(Event::Connect(info)) => info.id,
            other => panic!("expected connect, got {other:?}"),
        })
        .collect()
}
