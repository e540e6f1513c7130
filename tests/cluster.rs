//! Two servers in one process joined through a real `redis-server` (each server's ids
//! carry its own node), and one whose Redis is not there: the library's cluster API.

#[path = "util/redis.rs"]
mod redis;
mod util;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use redis::Redis;
use tungstenite::Message as WsMessage;
use util::*;
use wsloop::{
    Accept, ClusterConfig, ClusterEvent, ConnId, Handle, Handler, Message, PublishErrorKind,
    SendErrorKind, Server,
};

struct Quiet;

impl Handler for Quiet {
    fn on_message(&self, _: &Handle, _: ConnId, _: Message) {}
}

/// A server whose `/t/<topic>` connections are members of `<topic>`.
fn node(cluster: ClusterConfig) -> Server {
    node_with(config(), cluster)
}

fn node_with(config: wsloop::Config, cluster: ClusterConfig) -> Server {
    let config = config.cluster(cluster).on_upgrade(|request| {
        Ok(match request.path().strip_prefix("/t/") {
            Some(topic) => Accept::new().subscribe(topic),
            None => Accept::new(),
        })
    });
    Server::start(config, Quiet).expect("server starts")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn text_of(c: &mut Client) -> String {
    match next_message(c) {
        WsMessage::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// An envelope as another node would write it (all bytes ASCII, so it fits the
/// test's text-only Redis client): publish of `payload` to `topic` from node 99.
fn forged(topic: &str, seq: u8, payload: &str) -> String {
    let mut e = vec![1u8, 1, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, seq, 1, 0];
    e.push(topic.len() as u8);
    e.extend_from_slice(topic.as_bytes());
    e.extend_from_slice(payload.as_bytes());
    String::from_utf8(e).unwrap()
}

fn metric(addr: SocketAddr, name: &str) -> u64 {
    let body = http(addr, "GET", "/metrics", "").body;
    let line = body.lines().find(|l| l.split(' ').next() == Some(name));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("{name}"))
}

#[test]
fn two_nodes_share_topics_broadcasts_and_ids_and_report_gaps() {
    let _w = Watchdog::new("two nodes", Duration::from_secs(60));
    let redis = Redis::start();
    let a = node(ClusterConfig::new(redis.url()).node_id(11));
    let b = node(ClusterConfig::new(redis.url()).node_id(12));
    let (ha, hb) = (a.handle(), b.handle());
    assert_eq!((ha.node_id(), hb.node_id()), (11, 12));
    let events = hb.cluster_events().expect("a cluster node has events");
    let mut a1 = connect_path(a.local_addr(), "/t/room");
    let mut b1 = connect_path(b.local_addr(), "/t/room");
    wait_until("both nodes subscribed and ready", || {
        redis.numsub("wsloop:t:room") == 2
            && ha.unready_reason().is_none()
            && hb.unready_reason().is_none()
    });
    while events.try_recv().is_some() {} // the first Up
    let b1_id = hb.connections_of("room")[0];
    assert_eq!(b1_id.node(), 12);

    // publish_except skips its connection on whichever node it is.
    assert_eq!(ha.publish_except("room", "not for b1", b1_id), 1, "local members counted");
    assert_eq!(text_of(&mut a1), "not for b1");
    ha.publish("room", "for all");
    assert_eq!(text_of(&mut b1), "for all", "the first b1 sees: the except was honoured");
    assert_eq!(text_of(&mut a1), "for all");
    ha.broadcast("everyone");
    assert_eq!(text_of(&mut b1), "everyone");
    assert_eq!(text_of(&mut a1), "everyone");
    ha.send(b1_id, "direct").unwrap();
    assert_eq!(text_of(&mut b1), "direct");
    let a1_id = ha.connections_of("room")[0];
    assert_eq!(ha.send_many(&[a1_id, b1_id], "to both"), 2);
    assert_eq!(text_of(&mut a1), "to both");
    assert_eq!(text_of(&mut b1), "to both");

    // Another node's stream with a hole in it: delivered, the gap reported once.
    for (seq, payload) in [(1, "g1"), (3, "g3"), (3, "g3 again")] {
        let answer = redis.command(&["PUBLISH", "wsloop:t:room", &forged("room", seq, payload)]);
        assert_eq!(answer.as_deref(), Some(":2"));
    }
    redis.command(&["PUBLISH", "wsloop:t:room", "not an envelope"]);
    ha.publish("room", "marker");
    assert_eq!(text_of(&mut b1), "g1");
    assert_eq!(text_of(&mut b1), "g3");
    assert_eq!(text_of(&mut b1), "marker", "the duplicate was dropped");
    let event = events.recv_timeout(Duration::from_secs(5));
    assert_eq!(event, Some(ClusterEvent::Resync { topic: "room".into() }));
    let addr = b.local_addr();
    assert_eq!(metric(addr, "wsloop_cluster_gaps_total"), 1);
    assert_eq!(metric(addr, "wsloop_cluster_missed_messages_total"), 1);
    assert_eq!(metric(addr, "wsloop_cluster_duplicates_total"), 1);
    assert_eq!(metric(addr, "wsloop_cluster_malformed_total"), 1);

    // Redis dropping subscribers (what it does to one over client-output-buffer-limit):
    // down, resubscribed, every stream resynced, up; traffic flows again.
    redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let mut seen = Vec::new();
    while !seen.contains(&ClusterEvent::Up) {
        seen.push(events.recv_timeout(Duration::from_secs(10)).expect("events after a kill"));
    }
    for expected in [
        ClusterEvent::Down,
        ClusterEvent::Resync { topic: "room".into() },
        ClusterEvent::ResyncBroadcast,
    ] {
        assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
    }
    wait_until("a ready again", || ha.unready_reason().is_none());
    ha.publish("room", "after");
    assert_eq!(text_of(&mut b1), "after");
}

#[test]
fn without_redis_publishes_queue_within_a_bound_then_fail_and_readyz_says_why() {
    let _w = Watchdog::new("no redis", Duration::from_secs(60));
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cluster = ClusterConfig::new(format!("redis://127.0.0.1:{port}"))
        .node_id(3)
        .queue_bytes(64 << 10)
        .reconnect_delays(Duration::from_millis(10), Duration::from_millis(50));
    let server = node(cluster);
    let handle = server.handle();
    let mut member = connect_path(server.local_addr(), "/t/t");
    wait_until("readyz 503", || http(server.local_addr(), "GET", "/readyz", "").status == 503);
    // Between attempts the reason is "unreachable", during one "connecting": wait for
    // the first (reading it once raced with an attempt now and then).
    wait_until("the reason: Redis unreachable", || {
        handle.unready_reason().is_some_and(|reason| reason.contains("unreachable"))
    });

    let payload = "x".repeat(1024);
    let mut queued = 0;
    let refused = loop {
        let t = Instant::now();
        let result = handle.try_publish("t", payload.as_str());
        assert!(t.elapsed() < Duration::from_millis(100), "a publish never waits for Redis");
        match result {
            Ok(members) => {
                assert_eq!(members, 1, "local members get it while Redis is away");
                queued += 1;
                assert!(queued < 100, "the queue holds 64 KiB, not {queued} KiB");
            }
            Err(e) => break e,
        }
    };
    assert_eq!(refused.kind, PublishErrorKind::QueueFull);
    assert_eq!(refused.message, Message::Text(payload.clone()), "the message comes back");
    assert!(queued >= 50, "{queued} publishes fit in 64 KiB");
    for _ in 0..queued {
        assert_eq!(text_of(&mut member), payload);
    }
    assert_eq!(handle.publish("t", "dropped"), 0, "publish says 0 when refused");
    // Node 1, reactor 0, slot 0, generation 1.
    let elsewhere: ConnId = format!("{:x}", (1u128 << 104) | 1).parse().unwrap();
    assert_eq!(elsewhere.node(), 1);
    let err = handle.send(elsewhere, "x").unwrap_err();
    assert_eq!(err.kind, SendErrorKind::ClusterUnavailable);
    assert!(metric(server.local_addr(), "wsloop_cluster_refused_total") >= 3);
    assert_eq!(metric(server.local_addr(), "wsloop_cluster_up"), 0);
}

#[test]
fn a_frozen_redis_is_detected_by_pings_and_recovered_from() {
    let _w = Watchdog::new("frozen redis", Duration::from_secs(60));
    let redis = Redis::start();
    let cluster = |id| {
        ClusterConfig::new(redis.url())
            .node_id(id)
            .ping_interval(Duration::from_millis(100))
            .connect_timeout(Duration::from_millis(300))
            .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
    };
    let (a, b) = (node(cluster(21)), node(cluster(22)));
    let (ha, hb) = (a.handle(), b.handle());
    let mut b1 = connect_path(b.local_addr(), "/t/room");
    wait_until("ready", || ha.unready_reason().is_none() && hb.unready_reason().is_none());
    wait_until("b subscribed", || redis.numsub("wsloop:t:room") == 1);
    let events = hb.cluster_events().unwrap();
    while events.try_recv().is_some() {}

    // Hung, not gone: no FIN, no RST; only the missing PONGs tell.
    redis.freeze(true);
    let frozen = Instant::now();
    wait_until("b unready", || hb.unready_reason().is_some());
    let noticed = frozen.elapsed();
    assert!(noticed < Duration::from_secs(2), "noticed after {noticed:?}");
    assert_eq!(events.recv_timeout(Duration::from_secs(5)), Some(ClusterEvent::Down));
    std::thread::sleep(Duration::from_millis(500));
    assert!(hb.unready_reason().is_some(), "not ready while Redis is frozen");
    redis.freeze(false);
    wait_until("ready again", || ha.unready_reason().is_none() && hb.unready_reason().is_none());
    let mut seen = Vec::new();
    while let Some(event) = events.recv_timeout(Duration::from_millis(500)) {
        seen.push(event);
    }
    assert!(seen.contains(&ClusterEvent::Resync { topic: "room".into() }), "{seen:?}");
    ha.publish("room", "thawed");
    assert_eq!(text_of(&mut b1), "thawed");
    println!("a frozen Redis was noticed after {noticed:?}");
}

#[test]
fn a_burst_from_another_node_is_read_in_budgets_without_dropping_the_link() {
    let _w = Watchdog::new("burst", Duration::from_secs(60));
    let redis = Redis::start();
    // The test's client is slower than the fan-out; let its queue hold the whole burst.
    let roomy = || config().max_backpressure(32 << 20).fanout_queue_bytes(32 << 20);
    let a = node(ClusterConfig::new(redis.url()));
    let b = node_with(roomy(), ClusterConfig::new(redis.url()));
    let (ha, hb) = (a.handle(), b.handle());
    let mut b1 = connect_path(b.local_addr(), "/t/burst");
    wait_until("ready", || {
        ha.unready_reason().is_none()
            && hb.unready_reason().is_none()
            && redis.numsub("wsloop:t:burst") == 1
    });
    // 8 MiB at once: many times what the link reads per turn and holds unparsed.
    const N: usize = 8000;
    let filler = "y".repeat(1000);
    for i in 0..N {
        ha.try_publish("burst", format!("{i:05}{filler}")).expect("fits the 16 MiB queue");
    }
    for i in 0..N {
        let text = text_of(&mut b1);
        assert_eq!(&text[..5], format!("{i:05}"), "in order, none lost");
    }
    let addr = b.local_addr();
    assert_eq!(metric(addr, "wsloop_cluster_disconnects_total"), 0);
    assert_eq!(metric(addr, "wsloop_cluster_gaps_total"), 0);
    assert_eq!(metric(addr, "wsloop_cluster_received_total"), N as u64);
}

#[test]
fn a_message_a_reactor_had_no_room_for_is_a_gap_too() {
    let _w = Watchdog::new("local drops", Duration::from_secs(60));
    let redis = Redis::start();
    let a = node(ClusterConfig::new(redis.url()));
    // One fan-out command at a time per reactor: a burst from Redis overflows it.
    let b = node_with(config().reactors(1).fanout_queue_bytes(1), ClusterConfig::new(redis.url()));
    let (ha, hb) = (a.handle(), b.handle());
    let _b1 = connect_path(b.local_addr(), "/t/tight");
    wait_until("ready", || {
        ha.unready_reason().is_none()
            && hb.unready_reason().is_none()
            && redis.numsub("wsloop:t:tight") == 1
    });
    let events = hb.cluster_events().unwrap();
    while events.try_recv().is_some() {}
    for i in 0..5000 {
        ha.try_publish("tight", format!("{i}")).unwrap();
    }
    wait_until("all received", || metric(b.local_addr(), "wsloop_cluster_received_total") == 5000);
    let drops = metric(b.local_addr(), "wsloop_cluster_local_drops_total");
    assert!(drops > 0, "the burst overflowed the reactor's fan-out budget");
    assert_eq!(
        events.recv_timeout(Duration::from_secs(5)),
        Some(ClusterEvent::Resync { topic: "tight".into() })
    );
    assert_eq!(metric(b.local_addr(), "wsloop_cluster_resyncs_total"), drops);
}
