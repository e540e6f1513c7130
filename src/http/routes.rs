//! Which plain HTTP paths the server answers: the built-in ones (each can be turned off)
//! and the embedder's, set on [`Config`].

use std::sync::Arc;

use crate::config::Config;
use crate::handle::Handle;
use crate::http::Response;
use crate::protocol::handshake::Request;

/// A function that answers a plain HTTP request on one path. It runs on a reactor
/// thread, so it must be quick: every connection of that reactor waits while it runs.
pub type RouteHandler = Arc<dyn Fn(&Handle, &Request) -> Response + Send + Sync>;

/// The built-in routes, each of which can be turned off with
/// [`Config::builtin_route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Builtin {
    /// `GET /healthz`: 200 while the process runs.
    Healthz,
    /// `GET /readyz`: 200 while listening and not draining, else 503 with the reason.
    Readyz,
    /// `GET /metrics`: the counters in the Prometheus text format 0.0.4.
    Metrics,
    /// `GET /admin` (a live page), `GET /admin/api/stats` (its JSON), and the actions
    /// `POST /admin/api/close` and `POST /admin/api/publish`, which need
    /// [`Config::admin_token`]. Read-only, the page still shows counts and the names of
    /// the largest topics to anyone who reaches the port: turn it off where that matters.
    Admin,
}

/// The routes part of a [`Config`].
#[derive(Clone)]
pub(crate) struct Routes {
    /// Indexed by `Builtin as usize`.
    enabled: [bool; 4],
    pub(crate) custom: Vec<(String, RouteHandler)>,
    pub(crate) admin_token: Option<Arc<str>>,
}

impl Default for Routes {
    fn default() -> Routes {
        Routes { enabled: [true; 4], custom: Vec::new(), admin_token: None }
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let builtins = [Builtin::Healthz, Builtin::Readyz, Builtin::Metrics, Builtin::Admin];
        let on: Vec<Builtin> = builtins.into_iter().filter(|&b| self.is_on(b)).collect();
        let custom: Vec<&str> = self.custom.iter().map(|(path, _)| path.as_str()).collect();
        f.debug_struct("Routes")
            .field("builtin", &on)
            .field("custom", &custom)
            .field("admin_token", &self.admin_token.is_some())
            .finish()
    }
}

impl Routes {
    pub(crate) fn is_on(&self, builtin: Builtin) -> bool {
        self.enabled[builtin as usize]
    }

    pub(crate) fn custom(&self, path: &str) -> Option<&RouteHandler> {
        self.custom.iter().find(|(p, _)| p == path).map(|(_, handler)| handler)
    }
}

/// Plain HTTP routes. A request without an `Upgrade` header whose path has a route is
/// answered by it (then the socket closes); any other request is taken as a WebSocket
/// upgrade, and refused as before if it is not one. Requests are bounded like upgrades:
/// `max_header_bytes` and `handshake_timeout`.
impl Config {
    /// Answers plain `GET`/`HEAD` requests for `path` (exact match, query excluded) with
    /// `handler`; other methods get 405. Takes precedence over a built-in route on the
    /// same path. The handler runs on a reactor thread, so it must be quick.
    ///
    /// ```
    /// let config = wsloop::Config::default()
    ///     .route("/version", |_, _| wsloop::Response::text(200, "1.2.3"));
    /// ```
    pub fn route<F>(mut self, path: impl Into<String>, handler: F) -> Config
    where
        F: Fn(&Handle, &Request) -> Response + Send + Sync + 'static,
    {
        self.routes.custom.push((path.into(), Arc::new(handler)));
        self
    }

    /// Turns a built-in route on or off. Default: all on (the admin page read-only).
    pub fn builtin_route(mut self, route: Builtin, on: bool) -> Config {
        self.routes.enabled[route as usize] = on;
        self
    }

    /// Turns every built-in route off: only the embedder's routes answer plain HTTP.
    pub fn no_builtin_routes(mut self) -> Config {
        self.routes.enabled = [false; 4];
        self
    }

    /// The bearer token that enables the admin actions (close a connection, publish to a
    /// topic). Default: none, and the actions answer 403. Use a long random string: the
    /// actions are reachable by anyone who can reach the port.
    pub fn admin_token(mut self, token: impl Into<String>) -> Config {
        let token: String = token.into();
        self.routes.admin_token = (!token.is_empty()).then(|| Arc::from(token));
        self
    }
}
