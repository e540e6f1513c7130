//! Several `wsloop` processes as one cluster through a real `redis-server`: fan-out across
//! nodes, direct sends and closes to connections on other nodes, exact subscriptions
//! with a delayed unsubscribe, and Redis killed mid-run.

#[path = "../../tests/util/redis.rs"]
mod redis;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use redis::Redis;
use serde_json::{Value, json};
use tungstenite::Message as WsMessage;
use util::*;

/// One `wsloop --cluster` process; its log (stderr) goes to a file. Killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Node {
    fn start(redis: &Redis, id: u32, extra: &[&str]) -> Node {
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "cluster-{}-{}-node{id}.log",
            std::process::id(),
            redis.port
        ));
        let mut child = Command::new(server_binary())
            .args(["--addr", "127.0.0.1:0", "--reactors", "2", "--workers", "2"])
            .args(["--cluster", &redis.url(), "--node-id", &id.to_string()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn wsloop");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit("ws://").next().unwrap().parse().expect("address line");
        Node { child, addr, log }
    }

    fn readyz(&self) -> u16 {
        http(self.addr, "GET", "/readyz", "").status
    }

    fn wait_readyz(&self, status: u16, within: Duration) {
        let deadline = Instant::now() + within;
        while self.readyz() != status {
            assert!(Instant::now() < deadline, "/readyz never answered {status}: {}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A `wsloop_cluster_*` sample from `/metrics`.
    fn metric(&self, name: &str) -> u64 {
        let body = http(self.addr, "GET", "/metrics", "").body;
        let line = body.lines().find(|l| l.split(' ').next() == Some(name));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("{name}"))
    }

    fn wait_metric(&self, name: &str, at_least: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.metric(name) < at_least {
            assert!(Instant::now() < deadline, "{name} stayed under {at_least}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "node died: {}", self.logs());
        assert!(!self.logs().contains("panicked"), "{}", self.logs());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text_of(c: &mut Client) -> String {
    match next_message(c) {
        WsMessage::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn json_of(c: &mut Client) -> Value {
    serde_json::from_str(&text_of(c)).expect("server sends JSON")
}

/// A `/chat` client and its connection id (from the welcome message).
fn chat(addr: SocketAddr) -> (Client, String) {
    let mut c = connect_path(addr, "/chat");
    let hello = json_of(&mut c);
    let text = hello["message"].as_str().unwrap();
    let id = text.strip_prefix("welcome ").unwrap().split(';').next().unwrap().to_owned();
    (c, id)
}

fn say(c: &mut Client, v: Value) {
    c.send(WsMessage::text(v.to_string())).unwrap();
}

const NODES: u32 = 3;
const SUBSCRIBERS: usize = 1000;
const PER_ORIGIN: usize = 100;

const PUBLISHERS: usize = 3;

/// One `/broadcast` subscriber: waits for the start, publishes `PER_ORIGIN` messages
/// (`"origin:index"`) when it is a publisher, then reads every publisher's messages and
/// checks that each origin's arrive once and in order. Returns when each one arrived
/// (indexed `origin * PER_ORIGIN + index`).
fn subscriber(addr: SocketAddr, publishes_as: Option<usize>, start: Arc<Barrier>) -> Vec<Instant> {
    let mut client = connect_path(addr, "/broadcast");
    start.wait();
    if let Some(origin) = publishes_as {
        for i in 0..PER_ORIGIN {
            client.send(WsMessage::text(format!("{origin}:{i}"))).unwrap();
        }
    }
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut arrived = vec![Instant::now(); PUBLISHERS * PER_ORIGIN];
    for _ in 0..PUBLISHERS * PER_ORIGIN {
        let text = text_of(&mut client);
        let (origin, i) = text.split_once(':').expect("origin:index");
        let (origin, i): (usize, usize) = (origin.parse().unwrap(), i.parse().unwrap());
        let expected = next.entry(origin).or_default();
        assert_eq!(i, *expected, "origin {origin}: got {i}, expected {expected} (order, once)");
        *expected += 1;
        arrived[origin * PER_ORIGIN + i] = Instant::now();
    }
    // Nothing more may come: no duplicates.
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = client.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    }
    match client.read() {
        Ok(WsMessage::Text(t)) => panic!("an extra message: {t}"),
        _ => arrived,
    }
}

/// `SUBSCRIBERS` `/broadcast` clients spread round-robin over `addrs`, the first
/// `PUBLISHERS` of them also publishing; `ready` runs once all are connected. Returns, per
/// message, the time from the start until the last subscriber had it, sorted.
fn fan_out(addrs: &[SocketAddr], ready: impl FnOnce()) -> Vec<Duration> {
    let start = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    let mut threads = Vec::new();
    for i in 0..SUBSCRIBERS {
        let addr = addrs[i % addrs.len()];
        let publishes_as = (i < PUBLISHERS).then_some(i);
        let start = start.clone();
        let thread = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || subscriber(addr, publishes_as, start))
            .unwrap();
        threads.push(thread);
    }
    ready();
    let t0 = Instant::now();
    start.wait();
    let mut last = vec![t0; PUBLISHERS * PER_ORIGIN];
    for thread in threads {
        let arrived = thread.join().expect("a subscriber saw every message once, in order");
        for (last, arrived) in last.iter_mut().zip(arrived) {
            *last = (*last).max(arrived);
        }
    }
    let mut to_last: Vec<Duration> = last.into_iter().map(|t| t - t0).collect();
    to_last.sort();
    to_last
}

fn report(what: &str, to_last: &[Duration]) {
    let deliveries = SUBSCRIBERS * PUBLISHERS * PER_ORIGIN;
    println!(
        "{what}: {SUBSCRIBERS} subscribers, {PUBLISHERS}x{PER_ORIGIN} publishes in a burst, \
         {deliveries} deliveries each once and in per-origin order; start to last subscriber \
         per message p50 {:?} p99 {:?} max {:?}",
        percentile(to_last, 0.5),
        percentile(to_last, 0.99),
        to_last.last().copied().unwrap_or_default(),
    );
}

fn open_connections(nodes: &[SocketAddr]) -> u64 {
    let open = |addr| {
        let body = http(addr, "GET", "/metrics", "").body;
        let line = body.lines().find(|l| l.starts_with("wsloop_connections_open "));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).unwrap_or(0)
    };
    nodes.iter().map(|&addr| open(addr)).sum()
}

#[test]
fn three_nodes_deliver_every_publish_once_in_origin_order() {
    let _w = Watchdog::new("three nodes", Duration::from_secs(180));
    let _lock = many_sockets();
    let redis = Redis::start();
    let nodes: Vec<Node> = (1..=NODES).map(|id| Node::start(&redis, id, &[])).collect();
    for node in &nodes {
        node.wait_readyz(200, Duration::from_secs(10));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let to_last = fan_out(&addrs, || {
        // Every subscriber is a member (the upgrade hook subscribes before the 101);
        // each node must have subscribed the topic in Redis, and be ready.
        wait_until("all connections", Duration::from_secs(60), || {
            open_connections(&addrs) == SUBSCRIBERS as u64
        });
        wait_until("3 nodes on the topic", Duration::from_secs(10), || {
            redis.numsub("wsloop:t:broadcast") == NODES as usize
        });
        for node in &nodes {
            node.wait_readyz(200, Duration::from_secs(10));
        }
    });
    report("3 nodes through Redis (publishers on nodes 1, 2, 3)", &to_last);
    for node in &nodes {
        assert_eq!(node.metric("wsloop_cluster_gaps_total"), 0);
        assert_eq!(node.metric("wsloop_cluster_duplicates_total"), 0);
        assert_eq!(node.metric("wsloop_cluster_received_total"), 2 * PER_ORIGIN as u64);
    }
    drop(nodes);

    // The same on one standalone node, for comparison.
    let (_single, addr) = start_binary(&[]);
    let to_last = fan_out(&[addr], || {
        wait_until("all connections", Duration::from_secs(60), || {
            open_connections(&[addr]) == SUBSCRIBERS as u64
        });
    });
    report("1 node, no cluster (all publishers on it)", &to_last);
}

#[test]
fn sends_and_closes_reach_connections_on_other_nodes() {
    let _w = Watchdog::new("direct", Duration::from_secs(60));
    let redis = Redis::start();
    let one = Node::start(&redis, 1, &[]);
    let two = Node::start(&redis, 2, &["--admin-token", "t0ken"]);
    one.wait_readyz(200, Duration::from_secs(10));
    two.wait_readyz(200, Duration::from_secs(10));
    let (mut alice, alice_id) = chat(one.addr);
    let (mut bob, bob_id) = chat(two.addr);
    assert!(alice_id.starts_with('1') && bob_id.starts_with('2'), "{alice_id} {bob_id}");

    say(&mut bob, json!({"type": "direct", "to": alice_id, "content": "psst"}));
    assert_eq!(json_of(&mut alice), json!({"type": "direct", "content": "psst", "from": bob_id}));
    say(&mut alice, json!({"type": "direct", "to": bob_id, "content": "hi"}));
    assert_eq!(json_of(&mut bob), json!({"type": "direct", "content": "hi", "from": alice_id}));

    // A node nobody runs: counted where it was sent from.
    let raw = u128::from_str_radix(&alice_id, 16).unwrap();
    let nowhere = (raw & !(0xff_ffffu128 << 104)) | (77u128 << 104);
    say(&mut bob, json!({"type": "direct", "to": format!("{nowhere:x}"), "content": "?"}));
    two.wait_metric("wsloop_cluster_unknown_node_total", 1);

    // The admin page of node 2 closes a connection of node 1.
    let auth = "Authorization: Bearer t0ken\r\n";
    let answer = http(two.addr, "POST", &format!("/admin/api/close?id={alice_id}&code=4001"), auth);
    assert_eq!(answer.status, 200, "{}", answer.body);
    loop {
        match alice.read() {
            Ok(WsMessage::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 4001);
                break;
            }
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
    drop(alice);
    // Now stale: dropped and counted on its node.
    wait_until("alice gone", Duration::from_secs(5), || one.metric("wsloop_connections_open") == 0);
    say(&mut bob, json!({"type": "direct", "to": alice_id, "content": "late"}));
    one.wait_metric("wsloop_cluster_stale_total", 1);
}

#[test]
fn a_node_subscribes_exactly_its_topics_and_unsubscribes_after_the_delay() {
    let _w = Watchdog::new("subscriptions", Duration::from_secs(60));
    let redis = Redis::start();
    let node = Node::start(&redis, 5, &["--cluster-unsubscribe-delay", "0.5"]);
    node.wait_readyz(200, Duration::from_secs(10));
    assert!(redis.channels("wsloop:t:*").is_empty());
    let (mut c, _) = chat(node.addr);
    let (mut d, _) = chat(node.addr);
    let join = |client: &mut Client, room: &str| {
        say(client, json!({"type": "join", "room": room}));
        assert_eq!(json_of(client)["type"], "joined");
    };
    join(&mut c, "a");
    join(&mut c, "b");
    join(&mut d, "a");
    let both = vec!["wsloop:t:chat:a".to_owned(), "wsloop:t:chat:b".to_owned()];
    wait_until("both rooms subscribed", Duration::from_secs(5), || {
        redis.channels("wsloop:t:*") == both
    });
    assert_eq!(redis.numsub("wsloop:t:chat:a"), 1, "one SUBSCRIBE per node, not per member");
    // The last member of "a" leaves: still subscribed for the delay, then not.
    for client in [&mut c, &mut d] {
        say(client, json!({"type": "leave", "room": "a"}));
        assert_eq!(json_of(client)["type"], "left");
    }
    let left = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(redis.channels("wsloop:t:*"), both, "unsubscribed before the delay");
    wait_until("a unsubscribed", Duration::from_secs(5), || {
        redis.channels("wsloop:t:*") == vec!["wsloop:t:chat:b".to_owned()]
    });
    assert!(left.elapsed() >= Duration::from_millis(500));
    // A connection that ends leaves its rooms too.
    drop(c);
    wait_until("b unsubscribed", Duration::from_secs(5), || {
        redis.channels("wsloop:t:*").is_empty()
    });
}

#[test]
fn redis_killed_mid_run_is_reported_resynced_and_recovered() {
    let _w = Watchdog::new("redis killed", Duration::from_secs(90));
    let mut redis = Redis::start();
    let mut one = Node::start(&redis, 1, &[]);
    let mut two = Node::start(&redis, 2, &[]);
    one.wait_readyz(200, Duration::from_secs(10));
    two.wait_readyz(200, Duration::from_secs(10));
    let mut publisher = connect_path(one.addr, "/broadcast");
    let mut far = connect_path(two.addr, "/broadcast");
    let (mut room_one, _) = chat(one.addr);
    let (mut room_two, _) = chat(two.addr);
    for c in [&mut room_one, &mut room_two] {
        say(c, json!({"type": "join", "room": "r"}));
        assert_eq!(json_of(c)["type"], "joined");
    }
    wait_until("both nodes on both topics", Duration::from_secs(5), || {
        redis.numsub("wsloop:t:broadcast") == 2 && redis.numsub("wsloop:t:chat:r") == 2
    });
    publisher.send(WsMessage::text("before")).unwrap();
    assert_eq!(text_of(&mut far), "before");
    assert_eq!(text_of(&mut publisher), "before");
    // A chat room streaming from node 1 to node 2 all through the outage.
    let live = live_stream(&redis, one.addr, two.addr);
    wait_until("the stream flowing", Duration::from_secs(5), || live.heard.load(Relaxed) >= 20);

    let killed = Instant::now();
    redis.kill();
    one.wait_readyz(503, Duration::from_secs(5));
    two.wait_readyz(503, Duration::from_secs(5));
    let reason = http(two.addr, "GET", "/readyz", "").body;
    assert!(reason.contains("Redis"), "{reason}");
    println!("/readyz 503 on both nodes {:?} after SIGKILL: {}", killed.elapsed(), reason.trim());
    assert_eq!(two.metric("wsloop_cluster_up"), 0);
    // Local delivery goes on while Redis is away.
    publisher.send(WsMessage::text("during")).unwrap();
    assert_eq!(text_of(&mut publisher), "during");

    std::thread::sleep(Duration::from_millis(500));
    redis.restart();
    let restarted = Instant::now();
    one.wait_readyz(200, Duration::from_secs(15));
    two.wait_readyz(200, Duration::from_secs(15));
    println!("ready again {:?} after Redis restarted", restarted.elapsed());
    // Every topic that may have a gap is reported, to the application and the clients.
    for node in [&one, &two] {
        let logs = node.logs();
        for topic in ["broadcast", "chat:r"] {
            assert!(logs.contains(&format!("resync topic {topic}")), "{topic}: {logs}");
        }
        assert!(node.metric("wsloop_cluster_resyncs_total") >= 2);
        assert!(node.metric("wsloop_cluster_disconnects_total") >= 1);
        assert!(node.metric("wsloop_cluster_connects_total") >= 2);
        assert_eq!(node.metric("wsloop_cluster_up"), 1);
    }
    for c in [&mut room_one, &mut room_two] {
        assert_eq!(json_of(c), json!({"type": "resync", "room": "r"}));
    }
    // Delivery resumes ("during" may or may not have crossed: at-most-once).
    publisher.send(WsMessage::text("after")).unwrap();
    let mut got = text_of(&mut far);
    if got == "during" {
        got = text_of(&mut far);
    }
    assert_eq!(got, "after");
    let (sent, _talker, heard) = live.stop();
    let resync_at = heard.iter().position(Option::is_none).expect("a resync in the stream");
    let before = heard[..resync_at].iter().flatten().count();
    let after = heard[resync_at..].iter().flatten().count();
    assert!(before > 0 && after > 0, "{before} before the resync, {after} after");
    println!(
        "live stream across the outage: {sent} sent, {} received in order, {} lost, \
         resync notice after message {before}",
        before + after,
        sent - before - after
    );
    one.assert_alive();
    two.assert_alive();
}

/// A chat room "live": a talker on one node sending `0, 1, 2...` every 2 ms until
/// stopped, and a listener on another that checks they arrive in order without
/// duplicates and counts them.
struct LiveStream {
    stop: Arc<AtomicBool>,
    /// How many it sent, and the talker (kept open: a connection that ends leaves its
    /// rooms, maybe before its last message is handled).
    talking: std::thread::JoinHandle<(usize, Client)>,
    /// What the listener heard (`None`: a resync notice).
    listening: std::thread::JoinHandle<Vec<Option<usize>>>,
    heard: Arc<AtomicUsize>,
}

impl LiveStream {
    /// Stops the talker; returns how many it sent, the talker, and what was heard.
    fn stop(self) -> (usize, Client, Vec<Option<usize>>) {
        self.stop.store(true, Relaxed);
        let (sent, talker) = self.talking.join().unwrap();
        let heard = self.listening.join().expect("the stream stays in order, without duplicates");
        (sent, talker, heard)
    }
}

fn live_stream(redis: &Redis, from: SocketAddr, to: SocketAddr) -> LiveStream {
    let (mut talker, _) = chat(from);
    let (mut listener, _) = chat(to);
    for c in [&mut talker, &mut listener] {
        say(c, json!({"type": "join", "room": "live"}));
        assert_eq!(json_of(c)["type"], "joined");
    }
    wait_until("both nodes on live", Duration::from_secs(5), || {
        redis.numsub("wsloop:t:chat:live") == 2
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let talking = std::thread::spawn(move || {
        let mut sent = 0;
        while !stopped.load(Relaxed) {
            say(
                &mut talker,
                json!({"type": "message", "room": "live", "content": sent.to_string()}),
            );
            sent += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        // The end marker, sent once the link is back.
        say(&mut talker, json!({"type": "message", "room": "live", "content": "end"}));
        (sent, talker)
    });
    let listening = std::thread::spawn(move || {
        let mut heard = Vec::new();
        let mut last: Option<usize> = None;
        loop {
            let m = json_of(&mut listener);
            if m["type"] == "resync" {
                heard.push(None);
                continue;
            }
            let content = m["content"].as_str().unwrap().to_owned();
            if content == "end" {
                return heard;
            }
            let i: usize = content.parse().unwrap();
            assert!(last.is_none_or(|last| i > last), "{i} after {last:?}");
            last = Some(i);
            heard.push(Some(i));
            counted.fetch_add(1, Relaxed);
        }
    });
    LiveStream { stop, talking, listening, heard: count }
}
