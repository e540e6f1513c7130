//! Plain HTTP on the WebSocket port: health, readiness, routes, methods, the admin page
//! and its token-guarded actions, against a real server over raw sockets.

mod util;

use std::time::Duration;

use tungstenite::Message as WsMessage;
use util::*;
use wsloop::{Accept, Builtin, Response, Server};

#[test]
fn healthz_and_readyz_answer_and_readiness_follows_the_handle() {
    let _w = Watchdog::new("health", Duration::from_secs(20));
    let server = echo_server(config());
    let addr = server.local_addr();
    let health = http(addr, "GET", "/healthz", "");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "{}", health.head);
    assert_eq!(health.header("connection"), Some("close"));
    let head = http(addr, "HEAD", "/healthz", "");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.header("content-length"), Some("3"), "HEAD keeps the length");
    assert_eq!(http(addr, "GET", "/readyz", "").status, 200);

    server.handle().set_unready("draining");
    let ready = http(addr, "GET", "/readyz", "");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("draining"), "{}", ready.body);
    assert_eq!(http(addr, "GET", "/healthz", "").status, 200, "alive while draining");
    server.handle().set_ready();
    assert_eq!(http(addr, "GET", "/readyz", "").status, 200);
}

#[test]
fn routes_methods_and_turning_builtins_off() {
    let _w = Watchdog::new("routes", Duration::from_secs(20));
    let config = config()
        .route("/version", |handle, request| {
            let body = format!("v1 {} {}", request.query(), handle.connections());
            Response::text(200, body).header("X-Route", "custom")
        })
        .builtin_route(Builtin::Metrics, false);
    let server = echo_server(config);
    let addr = server.local_addr();
    let custom = http(addr, "GET", "/version?x=1", "");
    assert_eq!((custom.status, custom.body.as_str()), (200, "v1 x=1 0"));
    assert_eq!(custom.header("x-route"), Some("custom"));
    let post = http(addr, "POST", "/version", "Content-Length: 0\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // Off, or never routed: taken as a WebSocket handshake, which it is not (400).
    assert_eq!(http(addr, "GET", "/metrics", "").status, 400);
    assert_eq!(http(addr, "GET", "/nothing-here", "").status, 400);
    // An upgrade on a routed path is still an upgrade.
    let mut client = connect_path(addr, "/version");
    assert_echo(&mut client, "still a websocket");

    let bare = echo_server(util::config().no_builtin_routes());
    assert_eq!(http(bare.local_addr(), "GET", "/healthz", "").status, 400);
}

#[test]
fn a_request_head_is_bounded_like_an_upgrade() {
    let _w = Watchdog::new("bounded", Duration::from_secs(20));
    let server = echo_server(config().max_header_bytes(1024));
    let long = format!("X-Long: {}\r\n", "a".repeat(2000));
    assert_eq!(http(server.local_addr(), "GET", "/healthz", &long).status, 431);
}

#[test]
fn admin_page_is_self_contained_and_its_json_counts_connections() {
    let _w = Watchdog::new("admin", Duration::from_secs(20));
    let server = echo_server(config());
    let addr = server.local_addr();
    let page = http(addr, "GET", "/admin", "");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    for external in ["http://", "https://", "src=", "<link"] {
        assert!(!page.body.contains(external), "the page loads nothing else: {external}");
    }
    let mut clients: Vec<_> = (0..3).map(|_| connect(addr)).collect();
    for c in &mut clients {
        assert_echo(c, "hi");
    }
    let stats = http(addr, "GET", "/admin/api/stats", "");
    assert_eq!(stats.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&stats.body).expect("valid JSON");
    assert_eq!(v["connections"], 3, "{v}");
    assert_eq!(v["messages_in"], 3);
    let reactors = v["reactors"].as_array().unwrap();
    assert_eq!(reactors.len(), 2);
    let open: u64 = reactors.iter().map(|r| r["open"].as_u64().unwrap()).sum();
    assert_eq!(open, 3, "per-reactor open connections add up: {v}");
    assert_eq!(v["actions"], false);
    assert_eq!(v["backpressure"]["policy"], "close");
}

#[test]
fn admin_actions_need_the_configured_token() {
    let _w = Watchdog::new("admin_actions", Duration::from_secs(20));
    let readonly = echo_server(config());
    let answer = http(readonly.local_addr(), "POST", "/admin/api/publish?topic=t&text=x", "");
    assert_eq!(answer.status, 403, "no token configured: no actions");

    let config = config().admin_token("s3cret").on_upgrade(|_| Ok(Accept::new().subscribe("news")));
    let server = Server::start(config, Echo).unwrap();
    let addr = server.local_addr();
    let mut client = connect(addr);
    let wrong = http(
        addr,
        "POST",
        "/admin/api/publish?topic=news&text=x",
        "Authorization: Bearer nope\r\n",
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(http(addr, "GET", "/admin/api/publish?topic=news&text=x", "").status, 405);

    let auth = "Authorization: Bearer s3cret\r\n";
    let published = http(addr, "POST", "/admin/api/publish?topic=news&text=hello%20all", auth);
    assert_eq!(published.status, 200, "{}", published.body);
    assert_eq!(next_message(&mut client), WsMessage::text("hello all"));

    let stats: serde_json::Value =
        serde_json::from_str(&http(addr, "GET", "/admin/api/stats", "").body).unwrap();
    assert_eq!(stats["largest_topics"][0]["topic"], "news");
    for (query, status) in [("id=zz", 400), ("id=ffffffffffffffff", 404), ("", 400)] {
        let answer = http(addr, "POST", &format!("/admin/api/close?{query}"), auth);
        assert_eq!(answer.status, status, "{query}: {}", answer.body);
    }
    let id = wsloop_id_of_only_connection(&server);
    let closed = http(addr, "POST", &format!("/admin/api/close?id={id:x}&code=4001"), auth);
    assert_eq!(closed.status, 200, "{}", closed.body);
    match client.read() {
        Ok(WsMessage::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4001),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// The id of the one connection in topic `news`.
fn wsloop_id_of_only_connection(server: &Server) -> u128 {
    let ids = server.handle().connections_of("news");
    assert_eq!(ids.len(), 1);
    ids[0].as_u128()
}
