//! The upgrade hook's answer: accept (with per-connection data) or reject (with a status).

use std::sync::Arc;

use crate::event::UserData;
use crate::protocol::handshake::Request;

/// A function that sees every upgrade request (path, query, headers) before the 101.
pub type UpgradeHook = Arc<dyn Fn(&Request) -> Result<Accept, Reject> + Send + Sync>;

/// A function that decides whether a cross-origin `Origin` value may connect.
pub type OriginCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The hook accepts the upgrade.
#[derive(Default)]
pub struct Accept {
    pub(crate) user_data: Option<UserData>,
    pub(crate) topics: Vec<String>,
}

impl Accept {
    /// Accept with nothing attached.
    pub fn new() -> Accept {
        Accept::default()
    }

    /// Attach data the handler receives in `ConnectInfo::user_data` (e.g. the user an
    /// auth token named).
    pub fn with_user_data(mut self, data: UserData) -> Accept {
        self.user_data = Some(data);
        self
    }

    /// Join `topic` before the 101 goes out, so the client cannot miss a message
    /// published after its handshake completes (a subscription made in
    /// `Handler::on_connect` takes effect only when a worker runs it). If a topic limit
    /// refuses the subscription, the upgrade is refused with 503.
    pub fn subscribe(mut self, topic: impl Into<String>) -> Accept {
        self.topics.push(topic.into());
        self
    }
}

/// The hook refuses the upgrade; the client gets this HTTP status and the socket closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub(crate) status: u16,
}

impl Reject {
    /// Refuse with `status` (400–599; anything else is sent as 403).
    pub fn with_status(status: u16) -> Reject {
        let status = if (400..600).contains(&status) { status } else { 403 };
        Reject { status }
    }

    /// The status that will be sent.
    pub fn status(&self) -> u16 {
        self.status
    }
}

/// Which browser origins may open connections (protects against cross-site WebSocket
/// hijacking). Requests with no `Origin` header (non-browser clients) are always allowed.
#[derive(Clone, Default)]
pub enum Origins {
    /// Only origins whose host\[:port\] equals the request's `Host` (the default).
    #[default]
    SameHost,
    /// Same host, or one of these origins exactly (e.g. `https://app.example.com`),
    /// compared case-insensitively.
    List(Vec<String>),
    /// Same host, or an origin the function accepts.
    Check(OriginCheck),
    /// Every origin. Opt-in: browsers on any site can then connect with the user's cookies.
    Any,
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origins::SameHost => f.write_str("SameHost"),
            Origins::List(l) => f.debug_tuple("List").field(l).finish(),
            Origins::Check(_) => f.write_str("Check(..)"),
            Origins::Any => f.write_str("Any"),
        }
    }
}

impl Origins {
    pub(crate) fn allows(&self, req: &Request) -> bool {
        use crate::protocol::handshake::origin_matches_host;
        if matches!(self, Origins::Any) || origin_matches_host(req) {
            return true;
        }
        let Some(origin) = req.header("origin") else {
            return false;
        };
        match self {
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            Origins::Check(check) => check(origin),
            Origins::SameHost | Origins::Any => false,
        }
    }
}
