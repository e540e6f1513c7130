//! Plain HTTP on the WebSocket port: `/healthz`, `/readyz`, `/metrics` (Prometheus), the
//! `/admin` page and its JSON, and the embedder's routes.
//!
//! The reactor parses every request head the same way, bounded by `max_header_bytes` and
//! `handshake_timeout`. [`respond`] takes the requests that are not upgrades and have a
//! route; it answers once with `Connection: close` and the reactor closes the socket
//! after writing it. Everything here reads counters and never touches a connection.

mod admin;
mod health;
pub(crate) mod json;
mod prometheus;
mod response;
mod routes;

use std::sync::Arc;

use crate::config::Config;
use crate::handle::{Handle, Shared};
use crate::protocol::handshake::Request;

pub(crate) use health::Readiness;
pub use response::Response;
pub(crate) use routes::Routes;
pub use routes::{Builtin, RouteHandler};

/// The answer to a plain HTTP request that has a route; `None` for an upgrade request or
/// a path with no route (the caller then treats it as a WebSocket handshake).
pub(crate) fn respond(shared: &Arc<Shared>, config: &Config, request: &Request) -> Option<Vec<u8>> {
    if request.header("upgrade").is_some() {
        return None;
    }
    let handle = Handle { shared: shared.clone() };
    let routes = &config.routes;
    let response = match routes.custom(request.path()) {
        Some(handler) => get_or_head(request, || handler(&handle, request)),
        None => builtin(&handle, routes, request)?,
    };
    shared.counters.http_responses.bump(response.status());
    Some(response.encode(request.method() == "HEAD"))
}

/// A built-in route's answer, if the path has one and it is on.
fn builtin(handle: &Handle, routes: &Routes, request: &Request) -> Option<Response> {
    let on = |b| routes.is_on(b);
    let response = match request.path() {
        "/healthz" if on(Builtin::Healthz) => get_or_head(request, health::healthz),
        "/readyz" if on(Builtin::Readyz) => get_or_head(request, || health::readyz(handle)),
        "/metrics" if on(Builtin::Metrics) => get_or_head(request, || prometheus::metrics(handle)),
        "/admin" | "/admin/" if on(Builtin::Admin) => get_or_head(request, admin::page),
        "/admin/api/stats" if on(Builtin::Admin) => {
            get_or_head(request, || admin::stats(handle, routes.admin_token.is_some()))
        }
        "/admin/api/close" | "/admin/api/publish" if on(Builtin::Admin) => {
            admin::action(handle, routes.admin_token.as_deref(), request)
        }
        _ => return None,
    };
    Some(response)
}

/// `answer()` for GET and HEAD; 405 for any other method.
fn get_or_head(request: &Request, answer: impl FnOnce() -> Response) -> Response {
    match request.method() {
        "GET" | "HEAD" => answer(),
        _ => Response::text(405, "only GET and HEAD\n").header("Allow", "GET, HEAD"),
    }
}
