//! One node of a cluster: `redis-server --port 6379 &`, then in two terminals
//! `cargo run --example cluster -- 9101` and `cargo run --example cluster -- 9102`, and
//! connect clients to `ws://127.0.0.1:9101/` and `ws://127.0.0.1:9102/`: every text
//! message goes to every client of both nodes. `REDIS_URL` picks another Redis.
//!
//! The application also reads the cluster's events: a `Resync` tells it that messages
//! of a topic from other nodes may have been lost (Redis restarted, a node fell behind),
//! so it tells its clients to reload instead of silently missing them.

use std::time::Duration;

use wsloop::{
    Accept, ClusterConfig, ClusterEvent, Config, ConnId, Handle, Handler, Message, Server,
};

const TOPIC: &str = "everyone";

struct Relay;

impl Handler for Relay {
    fn on_message(&self, handle: &Handle, _id: ConnId, message: Message) {
        if let Err(e) = handle.try_publish(TOPIC, message) {
            log::warn!("not relayed: {e}");
        }
    }
}

fn main() -> Result<(), wsloop::Error> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(9101);
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let config = Config::default()
        .addr(("127.0.0.1", port))
        .cluster(ClusterConfig::new(redis))
        .on_upgrade(|_| Ok(Accept::new().subscribe(TOPIC)));
    let server = Server::start(config, Relay)?;
    let handle = server.handle();
    println!("node {} on ws://{}", handle.node_id(), server.local_addr());
    if let Some(events) = handle.cluster_events() {
        let handle = handle.clone();
        std::thread::spawn(move || {
            loop {
                match events.recv_timeout(Duration::from_secs(1)) {
                    Some(ClusterEvent::Resync { topic }) => {
                        handle.publish_local(&topic, "(messages from other nodes may be missing)");
                    }
                    Some(other) => println!("cluster: {other:?}"),
                    None => {}
                }
            }
        });
    }
    server.join();
    Ok(())
}
