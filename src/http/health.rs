//! `/healthz` and `/readyz`, and the readiness an operator or embedder sets.

use parking_lot::Mutex;

use crate::handle::Handle;
use crate::http::Response;

/// Why the server is not ready, if it is not (set through `Handle::set_unready`).
#[derive(Default)]
pub(crate) struct Readiness {
    reason: Mutex<Option<String>>,
}

/// Readiness for load balancers: `/readyz` answers 503 with a reason while the server
/// drains, so traffic moves away before it stops.
impl Handle {
    /// Marks the server not ready: `/readyz` answers 503 with `reason` (e.g. "draining")
    /// until [`Handle::set_ready`]. Connections are still accepted.
    pub fn set_unready(&self, reason: impl Into<String>) {
        let reason = reason.into();
        log::info!("not ready: {reason}");
        *self.shared.readiness.reason.lock() = Some(reason);
    }

    /// Undoes [`Handle::set_unready`].
    pub fn set_ready(&self) {
        *self.shared.readiness.reason.lock() = None;
    }

    /// Why the server is not ready, or `None` when it is: a reason set with
    /// [`Handle::set_unready`], "shutting down", or in a cluster the Redis link not up
    /// and subscribed.
    pub fn unready_reason(&self) -> Option<String> {
        if self.is_stopped() {
            return Some("shutting down".to_owned());
        }
        if let Some(reason) = self.shared.cluster.as_ref().and_then(|c| c.unready_reason()) {
            return Some(reason);
        }
        self.shared.readiness.reason.lock().clone()
    }
}

pub(crate) fn healthz() -> Response {
    Response::text(200, "ok\n")
}

pub(crate) fn readyz(handle: &Handle) -> Response {
    match handle.unready_reason() {
        None => Response::text(200, "ready\n"),
        Some(reason) => Response::text(503, format!("not ready: {reason}\n")),
    }
}
