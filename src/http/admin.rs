//! `/admin`: a self-contained live page, the JSON it polls, and the token-guarded actions.

use std::sync::atomic::Ordering;

use crate::config::Backpressure;
use crate::event::ConnId;
use crate::handle::Handle;
use crate::http::Response;
use crate::http::json::{self, Object};
use crate::metrics::{Counters, HistogramSnapshot};
use crate::protocol::CloseCode;
use crate::protocol::handshake::Request;

/// The page: inline CSS and script, no external asset; it polls `/admin/api/stats`.
const PAGE: &str = include_str!("admin.html");
/// How many topics the page lists.
const LARGEST_TOPICS: usize = 10;

pub(crate) fn page() -> Response {
    Response::html(200, PAGE).header("Cache-Control", "no-store").header(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
    )
}

pub(crate) fn stats(handle: &Handle, actions: bool) -> Response {
    Response::json(200, stats_json(handle, actions)).header("Cache-Control", "no-store")
}

/// Everything the page shows, as one JSON object; `actions` says whether a token is set.
pub(crate) fn stats_json(handle: &Handle, actions: bool) -> String {
    let shared = &handle.shared;
    let c = &shared.counters;
    let stats = handle.stats();
    let mut out = String::with_capacity(2048);
    let mut o = Object::new(&mut out);
    o.number("uptime_seconds", c.started.elapsed().as_secs_f64());
    let unready = handle.unready_reason();
    o.boolean("ready", unready.is_none()).text("unready_reason", unready.as_deref().unwrap_or(""));
    o.number("connections", stats.connections).number("sockets", stats.sockets);
    o.number("accepted", stats.accepted).number("accept_errors", Counters::get(&c.accept_errors));
    o.number("messages_in", stats.messages_in).number("messages_out", stats.messages_out);
    o.number("bytes_in", stats.bytes_in).number("bytes_out", stats.bytes_out);
    o.number("topics", stats.topics).number("subscriptions", shared.topics.subscription_count());
    o.raw("closes", |out| {
        json::array(out, c.closes.snapshot(), |out, (code, n)| {
            let mut o = Object::new(out);
            o.number("code", code).number("count", n).end();
        })
    });
    o.raw("reactors", |out| {
        json::array(out, c.reactors.iter().enumerate(), |out, (i, m)| {
            let mut turns = HistogramSnapshot::default();
            m.turns.add_to(&mut turns);
            let mut o = Object::new(out);
            o.number("index", i).number("open", m.open.load(Ordering::Relaxed));
            o.number("sockets", m.sockets.load(Ordering::Relaxed));
            o.number("paused", m.paused.load(Ordering::Relaxed));
            o.number("turns", turns.cumulative.last().copied().unwrap_or(0)).end();
        })
    });
    o.raw("largest_topics", |out| {
        json::array(out, shared.topics.largest(LARGEST_TOPICS), |out, (topic, members)| {
            let mut o = Object::new(out);
            o.text("topic", &topic).number("members", members).end();
        })
    });
    o.raw("backpressure", |out| backpressure(out, handle));
    o.boolean("actions", actions);
    o.end();
    out
}

fn backpressure(out: &mut String, handle: &Handle) {
    let shared = &handle.shared;
    let c = &shared.counters;
    let paused_now: u64 = c.reactors.iter().map(|m| m.paused.load(Ordering::Relaxed)).sum();
    let policy = match shared.backpressure {
        Backpressure::Close => "close",
        Backpressure::Drop => "drop",
    };
    let mut o = Object::new(out);
    o.text("policy", policy).number("max_bytes", shared.max_backpressure);
    o.number("slow_consumer_closes", Counters::get(&c.slow_consumers_closed));
    o.number("dropped_messages", Counters::get(&c.messages_dropped));
    o.number("reads_paused_total", Counters::get(&c.reads_paused));
    o.number("paused_now", paused_now).end();
}

/// `POST /admin/api/close?id=<hex>&code=<n>` and `POST /admin/api/publish?topic=&text=`,
/// with `Authorization: Bearer <token>`.
pub(crate) fn action(handle: &Handle, token: Option<&str>, request: &Request) -> Response {
    let Some(token) = token else {
        return Response::text(403, "admin actions are off: no admin token is configured\n");
    };
    if request.method() != "POST" {
        return Response::text(405, "admin actions are POST requests\n").header("Allow", "POST");
    }
    let given = request.header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes())) {
        return Response::text(401, "a valid admin token is required\n")
            .header("WWW-Authenticate", "Bearer realm=\"wsloop admin\"");
    }
    let query = request.query();
    match request.path() {
        "/admin/api/close" => close(handle, query),
        _ => publish(handle, query),
    }
}

fn close(handle: &Handle, query: &str) -> Response {
    let id = param(query, "id").and_then(|id| u128::from_str_radix(&id, 16).ok());
    let Some(id) = id.map(ConnId::from_raw) else {
        return Response::text(400, "id=<connection id in hex> is required\n");
    };
    let code = param(query, "code").and_then(|c| c.parse().ok()).unwrap_or(1000);
    match handle.close(id, CloseCode(code), "closed by the administrator") {
        Ok(()) => Response::text(200, format!("closing {id} with {code}\n")),
        Err(e) => Response::text(404, format!("{id}: {e}\n")),
    }
}

fn publish(handle: &Handle, query: &str) -> Response {
    let (Some(topic), Some(text)) = (param(query, "topic"), param(query, "text")) else {
        return Response::text(400, "topic= and text= are required\n");
    };
    let members = handle.publish(&topic, text);
    Response::text(200, format!("published to {members} members of {topic}\n"))
}

/// Compares in time independent of where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The percent-decoded value of `key` in a query string (`+` is a space).
pub(crate) fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k)? == key).then(|| decode(v)).flatten()
    })
}

fn decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode_and_bad_escapes_are_none() {
        assert_eq!(param("topic=a%20b&text=hi+there", "text").as_deref(), Some("hi there"));
        assert_eq!(param("topic=a%20b", "topic").as_deref(), Some("a b"));
        assert_eq!(param("x=%zz", "x"), None);
        assert_eq!(param("x=%4", "x"), None);
        assert_eq!(param("", "x"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"ab", b"abc"));
    }
}
