//! The client's side of the opening handshake (RFC 6455 §4.1): send the request, then
//! open only on a 101 whose accept key, subprotocol and extensions match what was asked.

use bytes::Bytes;

use super::{Aside, Env, Host, Opened, Session};
use crate::event::DisconnectReason;
use crate::protocol::client::{self, Offer, ResponseError};
use crate::protocol::deflate;

/// The permessage-deflate offer: any window from the server, and we accept a limit on
/// ours (§7.1.2.2).
const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";
use crate::protocol::message::Role;

/// What a client asked for, kept until the server answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientOffer {
    pub(crate) host: String,
    /// Path and query, e.g. `/chat?room=1`.
    pub(crate) target: String,
    pub(crate) protocols: Vec<String>,
    pub(crate) headers: Vec<(String, String)>,
    /// Offer permessage-deflate.
    pub(crate) compression: bool,
    key: [u8; 24],
}

impl ClientOffer {
    pub(crate) fn new(host: &str, target: &str) -> ClientOffer {
        ClientOffer { host: host.to_owned(), target: target.to_owned(), ..ClientOffer::default() }
    }

    /// Runs `f` with the offer in the protocol module's borrowed form.
    fn with_offer<T>(&self, f: impl FnOnce(&Offer<'_>) -> T) -> T {
        let protocols: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        f(&Offer {
            host: &self.host,
            path: &self.target,
            protocols: &protocols,
            extensions: self.compression.then_some(DEFLATE_OFFER),
            headers: &headers,
        })
    }
}

impl Session {
    /// A client connection: queues the upgrade request (with a key made from `random`);
    /// the server's answer comes through [`Session::receive`]. It opens (and delivers
    /// `Connect`) on a valid 101; anything else ends it with
    /// [`DisconnectReason::HandshakeFailed`] before it ever opened.
    pub(crate) fn client(
        env: &mut Env,
        host: &mut impl Host,
        mut offer: ClientOffer,
        random: [u8; 16],
    ) -> Session {
        offer.key = client::key_from(random);
        let request = offer.with_offer(|o| client::request(o, &offer.key));
        let mut session = Session::new(Role::Client, env);
        session.aside = Some(Box::new(Aside::Offer(offer)));
        session.queue_own(env, host, Bytes::from(request));
        session
    }

    /// Handles the server's answer; returns how many bytes were used.
    pub(super) fn client_handshake(
        &mut self,
        env: &mut Env,
        host: &mut impl Host,
        data: &mut [u8],
    ) -> usize {
        let max = env.config.max_header_bytes;
        let (response, used) = match client::parse_response(data, max) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return 0,
            Err(e) => {
                self.handshake_failed(env, host, e);
                return data.len();
            }
        };
        let Some(offer) = self.take_offer() else { return data.len() };
        let checked = offer.with_offer(|o| client::check_response(&response, &offer.key, o));
        let with_deflate = checked.and_then(|agreed| {
            let deflate = match &agreed.extensions {
                Some(answer) => Some(
                    deflate::client_agreed(answer)
                        .map_err(|_| ResponseError::UnofferedExtension)?,
                ),
                None => None,
            };
            Ok((agreed, deflate))
        });
        match with_deflate {
            Ok((agreed, deflate)) => {
                self.become_open(env, host, deflate);
                let (path, query) = offer.target.split_once('?').unwrap_or((&offer.target, ""));
                host.connect(Opened {
                    path: if path.is_empty() { "/".to_owned() } else { path.to_owned() },
                    query: query.to_owned(),
                    protocol: agreed.protocol,
                    user_data: None,
                });
                used + self.frames(env, host, &mut data[used..])
            }
            Err(e) => {
                self.handshake_failed(env, host, e);
                data.len()
            }
        }
    }

    fn take_offer(&mut self) -> Option<ClientOffer> {
        match self.aside.take().map(|aside| *aside) {
            Some(Aside::Offer(offer)) => Some(offer),
            other => {
                self.aside = other.map(Box::new);
                None
            }
        }
    }

    fn handshake_failed(
        &mut self,
        env: &mut Env,
        host: &mut impl Host,
        error: client::ResponseError,
    ) {
        self.set_reason(DisconnectReason::HandshakeFailed(error));
        self.complete(env, host);
    }
}
