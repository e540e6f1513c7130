//! `Handle::connect`: checks the request on the caller's thread, then asks a reactor to
//! open it and waits for the id (one reactor turn; nothing is resolved or connected on
//! the caller's thread).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::bounded;

use super::{ClientOptions, ConnectError, Dial, Target};
use crate::event::ConnId;
use crate::handle::{Command, Handle};
use crate::outbox;
use crate::tls::{ClientTls, ClientTlsError};

impl Handle {
    /// Opens an outgoing connection to `url` (`ws://host[:port]/path?query`) on one of
    /// this server's reactors and returns its id at once, before it is connected.
    ///
    /// Its events reach the same handler as accepted connections: `Connect` once the
    /// server's 101 is checked, `Message`s, `Reconnecting` when it drops and will come
    /// back, and one final `Disconnect`. `send`, `close`, `subscribe` and `publish` work
    /// on it unchanged; the id stays the same across reconnects. See the
    /// [`client` module docs](crate::ClientOptions) for the whole life.
    ///
    /// # Errors
    /// A URL or header that cannot be sent, a custom CA that is not PEM, a server at
    /// `max_connections` or stopped; see [`ConnectError`].
    ///
    /// # Examples
    /// ```no_run
    /// use wsloop::{ClientOptions, Config, ConnId, Handle, Handler, Message, Server};
    ///
    /// struct Print;
    /// impl Handler for Print {
    ///     fn on_message(&self, _: &Handle, id: ConnId, message: Message) {
    ///         println!("{id}: {message:?}");
    ///     }
    /// }
    ///
    /// let server = Server::start(Config::default().addr("127.0.0.1:0"), Print)?;
    /// let id = server.handle().connect("ws://127.0.0.1:9001/feed", ClientOptions::new())?;
    /// // Held while the connection is down, written once it opens.
    /// server.handle().send(id, "hello").ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(&self, url: &str, options: ClientOptions) -> Result<ConnId, ConnectError> {
        let target = Target::parse(url)?;
        let tls = match target.secure {
            true => Some(Arc::new(client_tls(&target.host, options.ca_pem.as_deref())?)),
            false => None,
        };
        if !options.headers.iter().all(|(name, value)| header_is_sendable(name, value)) {
            return Err(ConnectError::InvalidHeader);
        }
        if self.is_stopped() {
            return Err(ConnectError::ServerStopped);
        }
        let remote = self.dialling_reactor()?;
        let (reply, answer) = bounded(1);
        let dial = Box::new(Dial { target, options: Arc::new(options), tls });
        // Straight through the channel, never a thread's outbox: this thread waits.
        remote.send(Command::Dial { dial, reply }).map_err(|_| ConnectError::ServerStopped)?;
        answer.recv().map_err(|_| ConnectError::ServerStopped)?
    }

    /// The next reactor in turn, skipping the one this thread runs (it cannot answer
    /// while this thread waits).
    fn dialling_reactor(&self) -> Result<&crate::handle::Remote, ConnectError> {
        let reactors = &self.shared.reactors;
        let first = self.shared.next_dial.fetch_add(1, Ordering::Relaxed);
        (0..reactors.len())
            .map(|i| &reactors[(first + i) % reactors.len()])
            .find(|remote| !outbox::is_reactor(remote))
            .ok_or(ConnectError::OnReactorThread)
    }
}

/// A header line that cannot split the request: a token name, a value without CR, LF
/// or NUL.
fn header_is_sendable(name: &str, value: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty()
        && name.bytes().all(token)
        && value.bytes().all(|b| b != b'\r' && b != b'\n' && b != 0)
}

/// The TLS trust of a `wss://` target, checked before anything is dialled.
fn client_tls(host: &str, ca_pem: Option<&[u8]>) -> Result<ClientTls, ConnectError> {
    ClientTls::new(host, ca_pem).map_err(|e| match e {
        ClientTlsError::BadCa => ConnectError::InvalidCa,
        ClientTlsError::BadName => ConnectError::InvalidUrl,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn headers_that_could_split_the_request_are_refused() {
        assert!(super::header_is_sendable("Authorization", "Bearer x"));
        assert!(!super::header_is_sendable("X", "a\r\nHost: evil"));
        assert!(!super::header_is_sendable("Bad Name", "v"));
        assert!(!super::header_is_sendable("", "v"));
    }
}
