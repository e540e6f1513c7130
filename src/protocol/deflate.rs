//! permessage-deflate (RFC 7692), sans-IO: the negotiation from `Sec-WebSocket-Extensions`
//! header values, and the per-message codec ([`Deflater`], [`Inflater`]).
//!
//! Nothing here sees a socket. The reactor calls [`negotiate`] during the upgrade, answers
//! with [`Agreed::response_header`], turns on RSV1 in the decoder
//! ([`Decoder::set_compression`](super::message::Decoder::set_compression)), then inflates
//! each [`Incoming::Compressed`](super::message::Incoming::Compressed) message and deflates
//! outgoing ones.
//!
//! ```
//! use wsloop::protocol::deflate::{negotiate, DeflatePolicy, Deflater, Inflater};
//!
//! let offers = ["permessage-deflate; client_max_window_bits"];
//! let agreed = negotiate(offers.into_iter(), &DeflatePolicy::Shared)?.expect("accepted");
//! assert_eq!(
//!     agreed.response_header(),
//!     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
//! );
//!
//! let mut deflater = agreed.deflater(6);
//! let mut inflater = agreed.inflater();
//! let mut body = Vec::new();
//! deflater.compress(b"Hello", &mut body);
//! assert_eq!(body, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]); // RFC 7692 §7.2.3.1
//! let mut text = Vec::new();
//! inflater.decompress(&body, 1 << 20, &mut text)?;
//! assert_eq!(text, b"Hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modes
//!
//! - [`DeflatePolicy::Shared`] always agrees on no context takeover in both directions
//!   (§7.1.1), so every message is compressed and inflated on its own: one [`Deflater`] and
//!   one [`Inflater`] per reactor serve all its connections, and a connection holds no
//!   compression memory at all.
//! - [`DeflatePolicy::Dedicated`] keeps the LZ77 window across messages (better ratio for
//!   streams of similar messages), at the per-connection cost measured below.
//!
//! # Memory (measured, backend `zlib-rs`)
//!
//! Heap bytes held by one [`Deflater`] and one [`Inflater`] after a 1 KiB message each,
//! with context takeover, counted by a counting global allocator in `benches/deflate.rs`
//! (`cargo bench --bench deflate -- --memory`):
//!
//! | window bits | level | `Deflater` | `Inflater` | pair |
//! |---|---|---|---|---|
//! | 15 | 1, 6 or 9 | 380,032 | 47,552 | 427,584 |
//! | 12 | 6 | 265,344 | 47,552 | 312,896 |
//! | 9 | 1, 6 or 9 | 251,008 | 47,552 | 298,560 |
//!
//! This is the *dedicated cost per connection*; the shared mode pays it once per reactor.
//! Both are allocated whole when built (zlib-rs allocates its state up front), so build
//! them on a connection's first compressed message, not at the upgrade. The level does
//! not change the size. The deflater holds twice the window, a 2-byte chain entry per
//! window byte, a fixed 128 KiB hash head (65,536 entries; zlib's `memLevel` 8, which
//! `flate2` does not expose) and 115 KiB of block buffers and state, so a smaller window
//! saves little; zlib-rs' inflater always allocates a 32 KiB window, so [`Inflater`]
//! always uses one (it reads any smaller window's stream). For comparison, the C zlib backend (`flate2` feature `zlib`) holds 308,304 bytes per pair
//! at window bits 15 and 147,024 at 9, but ran 2–5 times slower in the same benchmark.
//!
//! # Window bits 8
//!
//! zlib (and `zlib-rs`) cannot deflate with a 256-byte window: it refuses window bits 8
//! for raw deflate. A client that offers `server_max_window_bits=8` is still accepted (it
//! is the only offer in Autobahn cases 13.3.* and 13.5.*): a [`Deflater`] built for window
//! bits 8 writes stored (uncompressed) DEFLATE blocks only (§7.2.3.3), which hold no
//! back-references and so never exceed any window. Such a connection's outgoing messages
//! are framed as compressed but are not smaller. Inflating needs no such care: an
//! [`Inflater`] with a larger window reads any stream made with a smaller one, so
//! `client_max_window_bits=8` is inflated with a 512-byte window.

use std::borrow::Cow;
use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::ProtocolError;

/// The extension's registered name (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The default LZ77 window: 32 KiB (window bits 15).
pub const MAX_WINDOW_BITS: u8 = 15;

/// The smallest window a peer may ask for: 256 bytes (window bits 8, §7.1.2).
pub const MIN_WINDOW_BITS: u8 = 8;

/// What a sync flush ends with, and what the receiver appends back (§7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How the server uses permessage-deflate; decides which offers it can honour.
///
/// The compression level and the size threshold under which messages go uncompressed are
/// the reactor's business, not the negotiation's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeflatePolicy {
    /// No context takeover in either direction: one deflater and one inflater per reactor,
    /// zero compression bytes per connection.
    ///
    /// The answer always carries `server_no_context_takeover` (§7.1.1.1 lets the server add
    /// it) and `client_no_context_takeover` (§7.1.1.2: the server may always include it).
    Shared,
    /// Context takeover (unless the client asks for none), with LZ77 windows of at most
    /// `window_bits` (8 to 15; clamped into that range) on both sides where the client
    /// lets the server choose. Costs a [`Deflater`] and an [`Inflater`] per connection:
    /// see the [module docs](self#memory-measured-backend-zlib-rs).
    Dedicated {
        /// Base-2 logarithm of the largest LZ77 window, 8 to 15.
        window_bits: u8,
    },
}

/// A malformed `Sec-WebSocket-Extensions` header (RFC 6455 §9.1, RFC 7230 §3.2.6): the
/// client is at fault and the server answers 400.
///
/// A well-formed `permessage-deflate` offer that the server cannot or must not accept is
/// not an error: [`negotiate`] declines it (RFC 7692 §7.1) and tries the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionError {
    /// A header value with no extension in it.
    Empty,
    /// An extension or parameter name is missing or is not a token.
    ExpectedToken,
    /// A parameter's `=` is followed by neither a token nor a quoted-string.
    ExpectedValue,
    /// A quoted-string is not closed, or unescapes to something that is not a token
    /// (RFC 6455 §9.1: "the value after quoted-string unescaping MUST conform to the
    /// 'token' ABNF").
    InvalidQuotedString,
    /// A character other than `;`, `,` or whitespace after a name or value.
    UnexpectedCharacter,
    /// A server's answer a client cannot follow ([`client_agreed`]): not exactly one
    /// `permessage-deflate`, or parameters an answer must not carry.
    UnacceptableAnswer,
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExtensionError::Empty => "Sec-WebSocket-Extensions names no extension",
            ExtensionError::ExpectedToken => "Sec-WebSocket-Extensions: expected a token",
            ExtensionError::ExpectedValue => "Sec-WebSocket-Extensions: expected a value",
            ExtensionError::InvalidQuotedString => {
                "Sec-WebSocket-Extensions: invalid quoted-string"
            }
            ExtensionError::UnexpectedCharacter => "Sec-WebSocket-Extensions: unexpected character",
            ExtensionError::UnacceptableAnswer => {
                "Sec-WebSocket-Extensions: an answer the client cannot follow"
            }
        })
    }
}

impl std::error::Error for ExtensionError {}

/// The permessage-deflate parameters in force on a connection, from [`negotiate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its deflater after every message (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client resets its deflater after every message (§7.1.1.2), so the server's
    /// inflater may be reset too (and, in the dedicated mode, need not be kept per
    /// connection).
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server may use to compress, 8 to 15 (§7.1.2.1).
    ///
    /// Build the deflater with it ([`Agreed::deflater`]). With no context takeover a
    /// message shorter than the window cannot reach past it whatever the deflater's own
    /// window, so a shared window-15 deflater may serve it: see
    /// [`Agreed::fits_shared_deflater`].
    pub server_max_window_bits: u8,
    /// The largest LZ77 window the client may use to compress, 8 to 15 (§7.1.2.2): size
    /// the inflater by it ([`Agreed::inflater`]).
    pub client_max_window_bits: u8,
    /// The offer named `server_max_window_bits`, so the answer must name it back (§7.1.2.1:
    /// "A server accepts an extension negotiation offer with this parameter by including
    /// the "server_max_window_bits" extension parameter in the extension negotiation
    /// response").
    server_window_offered: bool,
}

impl Agreed {
    /// The exact `Sec-WebSocket-Extensions` value to answer with: the parameters in force.
    ///
    /// `server_max_window_bits` appears when the client offered it or when it is below
    /// 15; `client_max_window_bits` appears when it is below 15 (only ever the case when
    /// the client offered it, §7.1.2.2: the server must not send it otherwise).
    pub fn response_header(&self) -> String {
        /// The longest value this writes: the name, both takeover flags and both window
        /// sizes at two digits.
        const LONGEST: usize = EXTENSION_NAME.len()
            + "; server_no_context_takeover; client_no_context_takeover".len()
            + "; server_max_window_bits=15; client_max_window_bits=15".len();
        // One allocation of one size, written in place: a connect storm makes one per
        // connection, and allocations of varied sizes freed among the connections'
        // long-lived ones leave holes behind them.
        let mut out = String::with_capacity(LONGEST);
        out.push_str(EXTENSION_NAME);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_window_offered || self.server_max_window_bits < MAX_WINDOW_BITS {
            push_window_bits(&mut out, "; server_max_window_bits=", self.server_max_window_bits);
        }
        if self.client_max_window_bits < MAX_WINDOW_BITS {
            push_window_bits(&mut out, "; client_max_window_bits=", self.client_max_window_bits);
        }
        debug_assert!(out.len() <= LONGEST);
        out
    }

    /// A deflater for this connection's outgoing messages, at zlib `level` (0–9).
    pub fn deflater(&self, level: u32) -> Deflater {
        Deflater::new(self.server_max_window_bits, level, self.server_no_context_takeover)
    }

    /// An inflater for this connection's incoming messages.
    pub fn inflater(&self) -> Inflater {
        Inflater::new(self.client_max_window_bits, self.client_no_context_takeover)
    }

    /// Whether a per-reactor deflater with a 32 KiB window and no context takeover may
    /// compress a message of `payload_len` bytes for this connection.
    ///
    /// True when the server does not keep its context and either its window is 15 bits
    /// or the message is no longer than its window: without context, a back-reference
    /// never reaches before the message's first byte, so it stays within the window the
    /// client allowed.
    pub fn fits_shared_deflater(&self, payload_len: usize) -> bool {
        self.server_no_context_takeover
            && (self.server_max_window_bits >= MAX_WINDOW_BITS
                || payload_len <= 1usize << self.server_max_window_bits)
    }
}

/// Picks the first `permessage-deflate` offer `policy` can honour (RFC 7692 §5, §7.1).
///
/// `offers` are the raw values of every `Sec-WebSocket-Extensions` header of the request,
/// in order. Each may list several extensions (comma-separated, `;`-separated parameters,
/// token or quoted-string values, names compared case-insensitively). Other extensions are
/// checked for syntax and otherwise ignored. `Ok(None)`: no offer can be honoured; proceed
/// uncompressed and send no `Sec-WebSocket-Extensions` header.
///
/// An offer is declined (the next one is tried) when it has a parameter RFC 7692 does not
/// define for offers, a parameter with an invalid value (a window size other than `8` to
/// `15` written without leading zeros, a value on a flag), or a parameter twice (§7.1:
/// "A server MUST decline an extension negotiation offer for this extension if any of the
/// following conditions are met").
///
/// # Errors
///
/// An [`ExtensionError`] when a header value does not follow the grammar of RFC 6455
/// §9.1: answer 400.
pub fn negotiate<'a>(
    offers: impl Iterator<Item = &'a str>,
    policy: &DeflatePolicy,
) -> Result<Option<Agreed>, ExtensionError> {
    let mut agreed = None;
    // Every header is parsed, even after an offer was accepted: a malformed header is a
    // malformed request wherever it stands.
    for value in offers {
        parse_header(value, &mut |offer: &Offer| {
            if agreed.is_none() {
                agreed = offer.accept(policy);
            }
        })?;
    }
    Ok(agreed)
}

/// A client's view of the server's `permessage-deflate` answer (RFC 7692 §7.1), as the
/// parameters the client's codecs follow, written from the side that compresses: in
/// the result, `server_*` describe **this client's** outgoing messages (the answer's
/// `client_*`) and `client_*` the server's messages (the answer's `server_*`), so a
/// connection's codecs read them the same way in both roles.
///
/// # Errors
/// A malformed header, more than one `permessage-deflate` answer, or parameters an
/// answer must not carry (an unknown one, a value on a flag, `client_max_window_bits`
/// without a value, a parameter twice): the client fails the connection (§7.1).
pub fn client_agreed(answer: &str) -> Result<Agreed, ExtensionError> {
    let mut answers = Vec::new();
    parse_header(answer, &mut |offer: &Offer| {
        answers.push((
            offer.declined,
            offer.server_no_context_takeover,
            offer.client_no_context_takeover,
            offer.server_max_window_bits,
            offer.client_max_window_bits,
        ))
    })?;
    match answers.as_slice() {
        [(false, server_nct, client_nct, server_bits, client_bits)]
            if !matches!(client_bits, Some(None)) =>
        {
            Ok(Agreed {
                server_no_context_takeover: *client_nct,
                client_no_context_takeover: *server_nct,
                server_max_window_bits: client_bits.flatten().unwrap_or(MAX_WINDOW_BITS),
                client_max_window_bits: server_bits.unwrap_or(MAX_WINDOW_BITS),
                server_window_offered: false,
            })
        }
        _ => Err(ExtensionError::UnacceptableAnswer),
    }
}

/// One `permessage-deflate` offer's parameters, as far as they are valid.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value ("I support it").
    client_max_window_bits: Option<Option<u8>>,
    /// An unknown parameter, an invalid value or a repeated parameter: decline (§7.1).
    declined: bool,
}

impl Offer {
    fn param(&mut self, name: &str, value: Option<&Value<'_>>) {
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        if is("server_no_context_takeover") {
            Self::flag(&mut self.server_no_context_takeover, value, &mut self.declined);
        } else if is("client_no_context_takeover") {
            Self::flag(&mut self.client_no_context_takeover, value, &mut self.declined);
        } else if is("server_max_window_bits") {
            // §7.1.2.1: it has a value, always.
            match value.and_then(Value::window_bits) {
                Some(bits) if self.server_max_window_bits.is_none() => {
                    self.server_max_window_bits = Some(bits);
                }
                _ => self.declined = true,
            }
        } else if is("client_max_window_bits") {
            // §7.1.2.2: with or without a value.
            let bits = match value {
                None => Some(None),
                Some(value) => value.window_bits().map(Some),
            };
            match bits {
                Some(bits) if self.client_max_window_bits.is_none() => {
                    self.client_max_window_bits = Some(bits);
                }
                _ => self.declined = true,
            }
        } else {
            self.declined = true;
        }
    }

    /// A parameter without a value, at most once.
    fn flag(seen: &mut bool, value: Option<&Value<'_>>, declined: &mut bool) {
        if *seen || value.is_some() {
            *declined = true;
        }
        *seen = true;
    }

    /// The parameters in force if `policy` accepts this offer.
    fn accept(&self, policy: &DeflatePolicy) -> Option<Agreed> {
        if self.declined {
            return None;
        }
        // The client's limit on our window binds whatever the policy (§7.1.2.1). Window
        // bits 8 is honoured with stored blocks (see the module docs).
        let offered_server_bits = self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
        let agreed = match *policy {
            DeflatePolicy::Shared => Agreed {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: offered_server_bits,
                // Without context the shared inflater's 32 KiB window reads any client
                // window; only a limit the client announced itself is in force.
                client_max_window_bits: match self.client_max_window_bits {
                    Some(Some(bits)) => bits,
                    _ => MAX_WINDOW_BITS,
                },
                server_window_offered: self.server_max_window_bits.is_some(),
            },
            DeflatePolicy::Dedicated { window_bits } => {
                let ours = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
                Agreed {
                    server_no_context_takeover: self.server_no_context_takeover,
                    client_no_context_takeover: self.client_no_context_takeover,
                    server_max_window_bits: offered_server_bits.min(ours),
                    // The client's window can only be limited when it offered the
                    // parameter (§7.1.2.2); otherwise it may use 32 KiB.
                    client_max_window_bits: match self.client_max_window_bits {
                        Some(Some(bits)) => bits.min(ours),
                        Some(None) => ours,
                        None => MAX_WINDOW_BITS,
                    },
                    server_window_offered: self.server_max_window_bits.is_some(),
                }
            }
        };
        Some(agreed)
    }
}

/// A parameter value as written: a token, or a quoted-string's inside (still escaped).
#[derive(Debug)]
enum Value<'a> {
    Token(&'a str),
    Quoted(&'a str),
}

impl Value<'_> {
    /// The value after quoted-string unescaping.
    fn unescaped(&self) -> Cow<'_, str> {
        match *self {
            Value::Token(token) => Cow::Borrowed(token),
            Value::Quoted(inner) if !inner.contains('\\') => Cow::Borrowed(inner),
            Value::Quoted(inner) => {
                let mut out = String::with_capacity(inner.len());
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    // A quoted-pair: the escaped character stands for itself.
                    out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
                }
                Cow::Owned(out)
            }
        }
    }

    /// A window size: a decimal 8 to 15 without leading zeros (§7.1.2.1, §7.1.2.2).
    fn window_bits(&self) -> Option<u8> {
        match &*self.unescaped() {
            "8" => Some(8),
            "9" => Some(9),
            "10" => Some(10),
            "11" => Some(11),
            "12" => Some(12),
            "13" => Some(13),
            "14" => Some(14),
            "15" => Some(15),
            _ => None,
        }
    }
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A cursor over one header value.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips optional whitespace (RFC 7230 §3.2.3 `OWS`).
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// `1*tchar`, or `None` (nothing consumed) if there is none here.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        // Token bytes are ASCII, so both ends are character boundaries.
        self.text.get(start..self.pos).filter(|t| !t.is_empty())
    }

    /// A token or a quoted-string (RFC 7230 §3.2.6), whose unescaped text must be a token
    /// (RFC 6455 §9.1).
    fn value(&mut self) -> Result<Value<'a>, ExtensionError> {
        if self.peek() != Some(b'"') {
            return self.token().map(Value::Token).ok_or(ExtensionError::ExpectedValue);
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(ExtensionError::InvalidQuotedString),
                Some(b'"') => break,
                Some(b'\\') => self.pos += 2,
                Some(_) => self.pos += 1,
            }
        }
        let inner = self.text.get(start..self.pos).ok_or(ExtensionError::InvalidQuotedString)?;
        self.pos += 1;
        let value = Value::Quoted(inner);
        let unescaped = value.unescaped();
        if unescaped.is_empty() || !unescaped.bytes().all(is_tchar) {
            return Err(ExtensionError::InvalidQuotedString);
        }
        Ok(value)
    }
}

/// Parses one header value (RFC 6455 §9.1 `extension-list`, with RFC 7230 §7's empty list
/// elements), calling `on_offer` for every `permessage-deflate` extension in it.
fn parse_header(text: &str, on_offer: &mut impl FnMut(&Offer)) -> Result<(), ExtensionError> {
    let mut cur = Cursor { text, pos: 0 };
    let mut extensions = 0usize;
    loop {
        cur.skip_ows();
        match cur.peek() {
            None => break,
            Some(b',') => {
                cur.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = cur.token().ok_or(ExtensionError::ExpectedToken)?;
        extensions += 1;
        let mut offer = name.eq_ignore_ascii_case(EXTENSION_NAME).then(Offer::default);
        loop {
            cur.skip_ows();
            match cur.peek() {
                None => break,
                Some(b',') => {
                    cur.pos += 1;
                    break;
                }
                Some(b';') => cur.pos += 1,
                Some(_) => return Err(ExtensionError::UnexpectedCharacter),
            }
            cur.skip_ows();
            let param = cur.token().ok_or(ExtensionError::ExpectedToken)?;
            cur.skip_ows();
            let value = if cur.peek() == Some(b'=') {
                cur.pos += 1;
                cur.skip_ows();
                Some(cur.value()?)
            } else {
                None
            };
            if let Some(offer) = &mut offer {
                offer.param(param, value.as_ref());
            }
        }
        if let Some(offer) = &offer {
            on_offer(offer);
        }
    }
    if extensions == 0 {
        return Err(ExtensionError::Empty);
    }
    Ok(())
}

/// Compresses messages for one direction (RFC 7692 §7.2.1): raw DEFLATE, sync-flushed,
/// with the trailing `00 00 ff ff` removed.
///
/// Holds zlib's deflate state (see the [module docs](self#memory-measured-backend-zlib-rs)
/// for its size) for as long as it lives.
pub struct Deflater {
    stream: Compress,
    no_context_takeover: bool,
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// A deflater with an LZ77 window of `window_bits` (8 to 15, clamped into that range)
    /// at zlib `level` (0 = store only … 9 = smallest; clamped to 9).
    ///
    /// Window bits 8 writes stored blocks only (see the
    /// [module docs](self#window-bits-8)). With `no_context_takeover` the stream is reset
    /// after every message; otherwise later messages may refer back to earlier ones.
    pub fn new(window_bits: u8, level: u32, no_context_takeover: bool) -> Deflater {
        let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        // zlib refuses raw deflate with 8 bits; level 0 never refers back, so a 9-bit
        // state at level 0 produces what any window accepts.
        let (bits, level) = if bits == MIN_WINDOW_BITS { (9, 0) } else { (bits, level.min(9)) };
        Deflater {
            stream: Compress::new_with_window_bits(Compression::new(level), false, bits),
            no_context_takeover,
        }
    }

    /// Appends the compressed body of the message `payload` to `out`.
    ///
    /// An empty payload gives the single byte `00` (an empty stored block without its
    /// tail, §7.2.3.6). If zlib ever reported an error (it does so only for misuse this
    /// type rules out), the stream is reset and the message is written as stored blocks,
    /// which is still a valid body.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        if payload.is_empty() {
            // Nothing to flush: zlib would emit nothing after a previous sync flush, so
            // the body is written directly. The stream is untouched.
            out.push(0x00);
            return;
        }
        if !self.deflate(payload, out, start) {
            out.truncate(start);
            self.stream.reset();
            write_stored(payload, out);
            return;
        }
        if self.no_context_takeover {
            self.stream.reset();
        }
    }

    /// Sync-flushes `payload` into `out` and drops the tail; false on a zlib error.
    fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>, start: usize) -> bool {
        let mut input = payload;
        loop {
            if out.capacity() - out.len() < 64 {
                // Text usually shrinks below half; grow geometrically if not, in steps of
                // at most 64 KiB at first so a huge, very compressible message does not
                // reserve half its size.
                let produced = out.len() - start;
                out.reserve((input.len() / 2).clamp(64, 64 << 10).max(produced));
            }
            let (in_before, out_before) = (self.stream.total_in(), out.len());
            if self.stream.compress_vec(input, out, FlushCompress::Sync).is_err() {
                return false;
            }
            let consumed = usize::try_from(self.stream.total_in() - in_before).unwrap_or(0);
            input = input.get(consumed..).unwrap_or_default();
            let progress = consumed > 0 || out.len() > out_before;
            // The flush is complete once all input is in and zlib left output room
            // unused (zlib manual, deflate()); no progress on an empty input means the
            // previous call already completed it.
            if input.is_empty() && (out.len() < out.capacity() || !progress) {
                break;
            }
            if !progress {
                return false;
            }
        }
        match out.get(start..) {
            Some(body) if body.ends_with(&TAIL) => {
                out.truncate(out.len() - TAIL.len());
                true
            }
            _ => false,
        }
    }
}

/// Writes `payload` as stored DEFLATE blocks (RFC 1951 §3.2.4), then the first byte of
/// the empty stored block whose other four bytes (`00 00 ff ff`) the receiver appends.
fn write_stored(payload: &[u8], out: &mut Vec<u8>) {
    for chunk in payload.chunks(usize::from(u16::MAX)) {
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(0x00); // BFINAL = 0, BTYPE = 00, then padding to the byte boundary.
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0x00);
}

/// The least output room the inflater adds at a time.
const INFLATE_CHUNK: usize = 4096;

/// Decompresses messages for one direction (RFC 7692 §7.2.2), never producing more than
/// a given size.
///
/// Holds zlib's inflate state (see the [module docs](self#memory-measured-backend-zlib-rs)
/// for its size) for as long as it lives.
pub struct Inflater {
    stream: Decompress,
    no_context_takeover: bool,
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// An inflater for a peer that compresses with a window of at most `window_bits`
    /// (8 to 15). With `no_context_takeover` the stream is reset after every message.
    ///
    /// The window used is always 32 KiB: a larger window reads any stream made with a
    /// smaller one, zlib-rs allocates 32 KiB whatever it is told, and only at 15 bits does
    /// `flate2` reset the stream in place rather than allocate a new one. (zlib could not
    /// inflate with window bits 8 anyway.) A peer that refers back further than it agreed
    /// is therefore not caught; its data is inflated correctly all the same.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Inflater {
        // Kept in the signature so a backend that sizes its window can use it.
        let _ = window_bits;
        Inflater {
            stream: Decompress::new_with_window_bits(false, MAX_WINDOW_BITS),
            no_context_takeover,
        }
    }

    /// Inflates one message's `body` (all its frames' payloads, concatenated) and appends
    /// the result to `out`.
    ///
    /// The `00 00 ff ff` tail is fed after `body` without copying it. Output room grows in
    /// steps and never past `max_size + 1` bytes beyond `out`'s length on entry, so a
    /// deflate bomb costs at most that much memory (plus any spare capacity `out` already
    /// had). A body whose last block is final (BFINAL, §7.2.3.4) ends the DEFLATE stream:
    /// what follows it is ignored, and the next message starts a fresh stream.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MessageTooLarge`] as soon as the output passes `max_size` bytes
    /// (close 1009); [`ProtocolError::InvalidCompressedData`] when `body` is not valid
    /// DEFLATE data (close 1007). On error `out` is cut back to its length on entry and
    /// the stream is reset, so an inflater shared by many connections stays usable.
    pub fn decompress(
        &mut self,
        body: &[u8],
        max_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        let start = out.len();
        match self.inflate(body, max_size, out, start) {
            Ok(ended) => {
                if ended || self.no_context_takeover {
                    self.stream.reset(false);
                }
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                self.stream.reset(false);
                Err(e)
            }
        }
    }

    /// Inflates `body` then the tail; `Ok(true)` when the stream ended (BFINAL).
    fn inflate(
        &mut self,
        body: &[u8],
        max_size: usize,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<bool, ProtocolError> {
        let limit = start.saturating_add(max_size);
        let mut input = body;
        let mut tail_fed = false;
        loop {
            if input.is_empty() && !tail_fed {
                input = &TAIL;
                tail_fed = true;
            }
            grow(out, start, limit, body.len());
            let (in_before, out_before) = (self.stream.total_in(), out.len());
            let status = self
                .stream
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            if out.len() > limit {
                return Err(ProtocolError::MessageTooLarge);
            }
            if status == Status::StreamEnd {
                return Ok(true);
            }
            let consumed = usize::try_from(self.stream.total_in() - in_before).unwrap_or(0);
            input = input.get(consumed..).unwrap_or_default();
            let room_left = out.len() < out.capacity();
            if tail_fed && input.is_empty() && room_left {
                return Ok(false);
            }
            if room_left && consumed == 0 && out.len() == out_before && !input.is_empty() {
                // zlib took nothing and wrote nothing with room to do both: it cannot
                // make sense of what is left.
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }
}

/// Makes room in `out` for more output when it has none, growing geometrically from a
/// guess based on the body's size, but never past `limit + 1` bytes (one byte past the
/// limit is how a too-large message shows itself).
fn grow(out: &mut Vec<u8>, start: usize, limit: usize, body_len: usize) {
    let len = out.len();
    if len < out.capacity() {
        return;
    }
    let step = (len - start).max(body_len.saturating_mul(2)).max(INFLATE_CHUNK);
    let target = len.saturating_add(step).min(limit.saturating_add(1)).max(len + 1);
    out.reserve_exact(target - len);
}

/// Appends `name` and `bits` (8–15) in decimal, without a temporary string.
fn push_window_bits(out: &mut String, name: &str, bits: u8) {
    out.push_str(name);
    if bits >= 10 {
        out.push(char::from(b'0' + bits / 10));
    }
    out.push(char::from(b'0' + bits % 10));
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    fn compress(d: &mut Deflater, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        d.compress(payload, &mut out);
        out
    }

    fn inflate(i: &mut Inflater, body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        i.decompress(body, 64 << 20, &mut out).map(|()| out)
    }

    fn agree(headers: &[&str], policy: DeflatePolicy) -> Result<Option<Agreed>, ExtensionError> {
        negotiate(headers.iter().copied(), &policy)
    }

    fn answer(headers: &[&str], policy: DeflatePolicy) -> Option<String> {
        agree(headers, policy).expect("well-formed").map(|a| a.response_header())
    }

    const DEDICATED: DeflatePolicy = DeflatePolicy::Dedicated { window_bits: 15 };

    // ---- codec: RFC 7692 §7.2.3 fixtures ---------------------------------------------

    #[test]
    fn rfc_hello_compressed() {
        // §7.2.3.1: "Hello" in one compressed message.
        for takeover in [false, true] {
            let mut d = Deflater::new(15, 6, !takeover);
            assert_eq!(compress(&mut d, b"Hello"), HELLO);
        }
        let mut i = Inflater::new(15, false);
        assert_eq!(inflate(&mut i, &HELLO).unwrap(), b"Hello");
    }

    #[test]
    fn rfc_context_takeover_fixtures() {
        // §7.2.3.2: the second "Hello" refers back to the first.
        let mut d = Deflater::new(15, 6, false);
        assert_eq!(compress(&mut d, b"Hello"), HELLO);
        assert_eq!(compress(&mut d, b"Hello"), [0xf2, 0x00, 0x11, 0x00, 0x00]);
        let mut i = Inflater::new(15, false);
        assert_eq!(inflate(&mut i, &HELLO).unwrap(), b"Hello");
        assert_eq!(inflate(&mut i, &[0xf2, 0x00, 0x11, 0x00, 0x00]).unwrap(), b"Hello");
        // Without takeover, the second message is compressed on its own again.
        let mut d = Deflater::new(15, 6, true);
        assert_eq!(compress(&mut d, b"Hello"), HELLO);
        assert_eq!(compress(&mut d, b"Hello"), HELLO);
    }

    #[test]
    fn rfc_stored_block_and_final_block_fixtures() {
        // §7.2.3.3: a stored block.
        let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00];
        let mut out = Vec::new();
        write_stored(b"Hello", &mut out);
        assert_eq!(out, stored);
        let mut i = Inflater::new(15, false);
        assert_eq!(inflate(&mut i, &stored).unwrap(), b"Hello");
        // §7.2.3.4: BFINAL set; the stream ends and the inflater starts afresh.
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate(&mut i, &bfinal).unwrap(), b"Hello");
        assert_eq!(inflate(&mut i, &HELLO).unwrap(), b"Hello");
        // §7.2.3.5: two DEFLATE blocks in one message.
        let two = [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(&mut i, &two).unwrap(), b"Hello");
    }

    #[test]
    fn window_bits_8_writes_stored_blocks() {
        let mut d = Deflater::new(8, 9, false);
        let body = compress(&mut d, b"Hello");
        assert_eq!(body, [0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00]);
        // Repetitive data is not compressed (no back-references) but round-trips.
        let payload = b"abcabcabcabc".repeat(100);
        let body = compress(&mut d, &payload);
        assert!(body.len() > payload.len());
        let mut i = Inflater::new(8, false);
        assert_eq!(
            inflate(&mut i, &compress(&mut Deflater::new(8, 6, false), &payload)).unwrap(),
            payload
        );
    }

    #[test]
    fn empty_message_is_one_zero_byte() {
        for takeover in [false, true] {
            let mut d = Deflater::new(15, 6, !takeover);
            let mut i = Inflater::new(15, !takeover);
            assert_eq!(compress(&mut d, b""), [0x00]);
            // Between other messages too, with the context kept.
            let a = compress(&mut d, b"first message");
            let empty = compress(&mut d, b"");
            let b = compress(&mut d, b"first message again");
            assert_eq!(empty, [0x00]);
            assert_eq!(inflate(&mut i, &[0x00]).unwrap(), b"");
            assert_eq!(inflate(&mut i, &a).unwrap(), b"first message");
            assert_eq!(inflate(&mut i, &empty).unwrap(), b"");
            assert_eq!(inflate(&mut i, &b).unwrap(), b"first message again");
        }
    }

    // ---- codec: round trips ----------------------------------------------------------

    /// Deterministic JSON-ish text.
    fn record(n: usize) -> String {
        format!(
            "{{\"id\":{n},\"user\":\"user{}\",\"event\":\"{}\",\"value\":{},\"tags\":[\"a{}\",\"b\"]}}",
            n % 97,
            ["click", "view", "buy", "scroll"][n % 4],
            n * 7919 % 10007,
            n % 13
        )
    }

    #[test]
    fn no_context_takeover_round_trips() {
        for bits in 9..=15 {
            let mut d = Deflater::new(bits, 6, true);
            let mut i = Inflater::new(bits, true);
            for n in 0..50 {
                let msg = record(n).repeat(n % 7 + 1);
                let body = compress(&mut d, msg.as_bytes());
                // Each body stands alone: a fresh inflater reads it.
                assert_eq!(inflate(&mut Inflater::new(bits, true), &body).unwrap(), msg.as_bytes());
                assert_eq!(inflate(&mut i, &body).unwrap(), msg.as_bytes(), "bits {bits}");
            }
        }
    }

    #[test]
    fn thousand_messages_with_context_takeover() {
        for bits in [9, 12, 15] {
            let mut d = Deflater::new(bits, 6, false);
            let mut i = Inflater::new(bits, false);
            let mut wire = 0;
            let mut plain = 0;
            for n in 0..1000 {
                let msg = record(n);
                let body = compress(&mut d, msg.as_bytes());
                wire += body.len();
                plain += msg.len();
                assert_eq!(inflate(&mut i, &body).unwrap(), msg.as_bytes(), "message {n}");
            }
            // Takeover pays: later records refer back to earlier ones.
            assert!(wire * 2 < plain, "{wire} of {plain}");
        }
    }

    #[test]
    fn large_and_incompressible_messages_round_trip() {
        let mut rng = 0x1234_5678_u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (rng >> 56) as u8
            })
            .collect();
        let text = record(1).repeat(40_000); // about 3 MB
        for payload in [&noise[..], text.as_bytes()] {
            for takeover in [false, true] {
                let mut d = Deflater::new(15, 6, !takeover);
                let mut i = Inflater::new(15, !takeover);
                for _ in 0..2 {
                    // Into an output that already holds bytes: they are kept.
                    let mut body = b"prefix".to_vec();
                    d.compress(payload, &mut body);
                    let mut out = b"keep".to_vec();
                    i.decompress(&body[6..], payload.len(), &mut out).unwrap();
                    assert_eq!(&out[..4], b"keep");
                    assert!(out[4..] == *payload);
                }
            }
        }
    }

    #[test]
    fn window_bits_limit_holds() {
        // A body made with a 9-bit window inflates with a 9-bit inflater, even when the
        // repeats are further apart than 512 bytes (the deflater must not reach them).
        let block = record(3).repeat(20); // about 1.5 KB
        let payload = format!("{block}{block}{block}");
        for level in [1, 6, 9] {
            let mut d = Deflater::new(9, level, false);
            let mut i = Inflater::new(9, false);
            for _ in 0..3 {
                let body = compress(&mut d, payload.as_bytes());
                assert_eq!(inflate(&mut i, &body).unwrap(), payload.as_bytes());
            }
        }
    }

    // ---- codec: hostile input --------------------------------------------------------

    #[test]
    fn deflate_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let body = compress(&mut Deflater::new(15, 9, true), &zeros);
        assert!(body.len() < 20_000, "{}", body.len());
        let max = 64 << 10;
        for takeover in [false, true] {
            let mut i = Inflater::new(15, !takeover);
            let mut out = Vec::new();
            assert_eq!(i.decompress(&body, max, &mut out), Err(ProtocolError::MessageTooLarge));
            assert!(out.capacity() <= max + 1, "capacity {}", out.capacity());
            assert!(out.is_empty());
            // The inflater was reset: it still reads a good message.
            assert_eq!(inflate(&mut i, &HELLO).unwrap(), b"Hello");
        }
    }

    #[test]
    fn exactly_max_size_is_accepted() {
        let payload = record(5).repeat(100);
        let body = compress(&mut Deflater::new(15, 6, true), payload.as_bytes());
        let mut i = Inflater::new(15, true);
        let mut out = Vec::new();
        i.decompress(&body, payload.len(), &mut out).unwrap();
        assert_eq!(out, payload.as_bytes());
        assert!(out.capacity() <= payload.len() + 1);
        let mut out = Vec::new();
        assert_eq!(
            i.decompress(&body, payload.len() - 1, &mut out),
            Err(ProtocolError::MessageTooLarge)
        );
        let mut out = Vec::new();
        assert_eq!(i.decompress(&[0x00], 0, &mut out), Ok(()));
        assert_eq!(i.decompress(&HELLO, 0, &mut out), Err(ProtocolError::MessageTooLarge));
    }

    #[test]
    fn garbage_is_invalid_compressed_data() {
        let mut i = Inflater::new(15, false);
        // BTYPE = 11 is reserved.
        assert_eq!(inflate(&mut i, &[0xff, 0xff, 0xff]), Err(ProtocolError::InvalidCompressedData));
        // A stored block whose NLEN is not the complement of LEN.
        assert_eq!(
            inflate(&mut i, &[0x00, 0x05, 0x00, 0x00, 0x00, b'H']),
            Err(ProtocolError::InvalidCompressedData)
        );
        // A back-reference before the start of the stream.
        let mut i = Inflater::new(15, true);
        assert_eq!(
            inflate(&mut i, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
            Err(ProtocolError::InvalidCompressedData)
        );
        // Still usable afterwards.
        assert_eq!(inflate(&mut i, &HELLO).unwrap(), b"Hello");
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = 7u64;
        let mut next = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as u8
        };
        let mut i = Inflater::new(15, false);
        for round in 0..3000 {
            let len = usize::from(next()) % 64;
            let mut body: Vec<u8> = (0..len).map(|_| next()).collect();
            if round % 3 == 0 {
                // Start with a valid message, then damage its end.
                body = [&HELLO[..], &body].concat();
            }
            let mut out = Vec::new();
            let _ = i.decompress(&body, 1 << 16, &mut out);
            assert!(out.len() <= 1 << 16);
        }
    }

    // ---- negotiation -----------------------------------------------------------------

    #[test]
    fn shared_answers_no_context_takeover_both_ways() {
        let expected = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        for offer in [
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "Permessage-Deflate; Server_No_Context_Takeover",
            "permessage-deflate;client_no_context_takeover",
        ] {
            assert_eq!(
                answer(&[offer], DeflatePolicy::Shared).as_deref(),
                Some(expected),
                "{offer}"
            );
        }
        let agreed = agree(&["permessage-deflate"], DeflatePolicy::Shared).unwrap().unwrap();
        assert_eq!(
            agreed,
            Agreed {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
                server_window_offered: false,
            }
        );
        assert!(agreed.fits_shared_deflater(usize::MAX));
    }

    #[test]
    fn window_bits_offers() {
        // The client limits our window: the answer names the limit back.
        assert_eq!(
            answer(&["permessage-deflate; server_max_window_bits=10"], DeflatePolicy::Shared)
                .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
            )
        );
        assert_eq!(
            answer(&["permessage-deflate; server_max_window_bits=15"], DEDICATED).as_deref(),
            Some("permessage-deflate; server_max_window_bits=15")
        );
        // A client window hint is in force.
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits=10"], DeflatePolicy::Shared)
                .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10"
            )
        );
        // Window bits 8 is accepted (stored blocks), Autobahn 13.3 / 13.5.
        let agreed = agree(
            &["permessage-deflate; client_no_context_takeover; server_max_window_bits=8"],
            DeflatePolicy::Shared,
        )
        .unwrap()
        .unwrap();
        assert_eq!(agreed.server_max_window_bits, 8);
        assert!(agreed.fits_shared_deflater(256));
        assert!(!agreed.fits_shared_deflater(257));
    }

    #[test]
    fn dedicated_keeps_context_and_limits_windows() {
        assert_eq!(
            answer(&["permessage-deflate"], DEDICATED).as_deref(),
            Some("permessage-deflate")
        );
        let agreed = agree(&["permessage-deflate"], DEDICATED).unwrap().unwrap();
        assert!(!agreed.server_no_context_takeover && !agreed.client_no_context_takeover);
        assert!(!agreed.fits_shared_deflater(1));
        // The client's wishes are honoured.
        assert_eq!(
            answer(
                &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
                DEDICATED
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        let small = DeflatePolicy::Dedicated { window_bits: 10 };
        // Our window is announced; the client's is limited only where it offered the
        // parameter.
        assert_eq!(
            answer(&["permessage-deflate"], small).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        let agreed = agree(&["permessage-deflate"], small).unwrap().unwrap();
        assert_eq!((agreed.server_max_window_bits, agreed.client_max_window_bits), (10, 15));
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits"], small).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=10")
        );
        assert_eq!(
            answer(
                &["permessage-deflate; client_max_window_bits=9; server_max_window_bits=12"],
                small
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9")
        );
        assert_eq!(
            answer(&["permessage-deflate; server_max_window_bits=9"], DEDICATED).as_deref(),
            Some("permessage-deflate; server_max_window_bits=9")
        );
        // Out-of-range policies are clamped.
        let agreed = agree(
            &["permessage-deflate; client_max_window_bits"],
            DeflatePolicy::Dedicated { window_bits: 30 },
        )
        .unwrap()
        .unwrap();
        assert_eq!((agreed.server_max_window_bits, agreed.client_max_window_bits), (15, 15));
        assert_eq!(agreed.response_header(), "permessage-deflate");
    }

    #[test]
    fn agreed_codecs_talk_to_each_other() {
        // The server's deflater feeds a client-side inflater sized by the agreement, and
        // the other way round.
        for (offer, policy) in [
            ("permessage-deflate", DeflatePolicy::Shared),
            ("permessage-deflate", DEDICATED),
            (
                "permessage-deflate; client_max_window_bits",
                DeflatePolicy::Dedicated { window_bits: 9 },
            ),
            ("permessage-deflate; server_max_window_bits=8", DEDICATED),
        ] {
            let agreed = agree(&[offer], policy).unwrap().unwrap();
            let mut server_out = agreed.deflater(6);
            let mut client_in =
                Inflater::new(agreed.server_max_window_bits, agreed.server_no_context_takeover);
            let mut client_out =
                Deflater::new(agreed.client_max_window_bits, 6, agreed.client_no_context_takeover);
            let mut server_in = agreed.inflater();
            for n in 0..200 {
                let msg = record(n).repeat(n % 5 + 1);
                let down = compress(&mut server_out, msg.as_bytes());
                assert_eq!(inflate(&mut client_in, &down).unwrap(), msg.as_bytes());
                let up = compress(&mut client_out, msg.as_bytes());
                assert_eq!(inflate(&mut server_in, &up).unwrap(), msg.as_bytes());
            }
        }
    }

    #[test]
    fn first_acceptable_offer_across_headers() {
        // §7.1.3-style fallbacks in one header: the first offer is declined (unknown
        // parameter), the second accepted.
        let agreed = agree(
            &["permessage-deflate; foo=1, permessage-deflate; client_max_window_bits=9, permessage-deflate"],
            DEDICATED,
        )
        .unwrap()
        .unwrap();
        assert_eq!(agreed.client_max_window_bits, 9);
        // Several headers, other extensions first.
        let agreed = agree(
            &[
                "x-webkit-deflate-frame",
                "foo; bar=\"baz\", permessage-deflate; server_max_window_bits=11",
                "permessage-deflate",
            ],
            DEDICATED,
        )
        .unwrap()
        .unwrap();
        assert_eq!(agreed.server_max_window_bits, 11);
        // None acceptable: proceed uncompressed.
        assert_eq!(agree(&["x-webkit-deflate-frame", "foo"], DEDICATED), Ok(None));
        assert_eq!(agree(&["permessage-deflate; server_max_window_bits"], DEDICATED), Ok(None));
    }

    #[test]
    fn quoted_values_and_whitespace() {
        for offer in [
            "permessage-deflate; client_max_window_bits=\"10\"",
            "permessage-deflate;client_max_window_bits = \"1\\0\"",
            " \t permessage-deflate \t ;\tclient_max_window_bits=10 \t",
            ", ,permessage-deflate; client_max_window_bits=10,",
        ] {
            let agreed = agree(&[offer], DEDICATED).unwrap().unwrap();
            assert_eq!(agreed.client_max_window_bits, 10, "{offer}");
        }
        // Another extension's quoted values are checked too: unescaped, a value must be
        // a token, which a comma is not.
        assert_eq!(
            agree(&["foo; a=\"x,y\", permessage-deflate"], DEDICATED),
            Err(ExtensionError::InvalidQuotedString)
        );
        let agreed = agree(&["foo; a=\"x\", permessage-deflate"], DEDICATED).unwrap();
        assert!(agreed.is_some());
    }

    #[test]
    fn a_client_reads_the_answer_from_the_compressing_side() {
        // The server keeps its context, asks the client to reset and to use 10 bits.
        let agreed = client_agreed(
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=10",
        )
        .unwrap();
        // Our deflater: no context, window 10; our inflater: the server's defaults.
        assert!(agreed.server_no_context_takeover && !agreed.client_no_context_takeover);
        assert_eq!((agreed.server_max_window_bits, agreed.client_max_window_bits), (10, 15));
        let agreed = client_agreed(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
        )
        .unwrap();
        assert!(!agreed.server_no_context_takeover && agreed.client_no_context_takeover);
        assert_eq!((agreed.server_max_window_bits, agreed.client_max_window_bits), (15, 9));
        // Round trip: what our deflater makes, the server's side (read back the same
        // parameters from its own point of view) inflates.
        let mut ours = agreed.deflater(6);
        let mut body = Vec::new();
        ours.compress(b"hello hello hello", &mut body);
        let mut theirs = Inflater::new(15, false);
        let mut out = Vec::new();
        theirs.decompress(&body, 1 << 20, &mut out).unwrap();
        assert_eq!(out, b"hello hello hello");
    }

    #[test]
    fn a_client_refuses_answers_it_cannot_follow() {
        for bad in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; unknown",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; client_no_context_takeover=1",
            "x-other",
        ] {
            assert!(client_agreed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_values_decline_the_offer() {
        for bad in [
            "server_max_window_bits=16",
            "server_max_window_bits=7",
            "server_max_window_bits=abc",
            "server_max_window_bits=010",
            "server_max_window_bits=+9",
            "server_max_window_bits",
            "client_max_window_bits=16",
            "client_max_window_bits=7",
            "client_max_window_bits=\"abc\"",
            "client_max_window_bits=09",
            "server_no_context_takeover=1",
            "client_no_context_takeover=true",
            "server_no_context_takeover; server_no_context_takeover",
            "client_no_context_takeover; Client_No_Context_Takeover",
            "server_max_window_bits=10; server_max_window_bits=10",
            "client_max_window_bits; client_max_window_bits=10",
            "mystery",
            "x=1",
        ] {
            let offer = format!("permessage-deflate; {bad}");
            for policy in [DeflatePolicy::Shared, DEDICATED] {
                assert_eq!(agree(&[&offer], policy), Ok(None), "{offer}");
            }
            // The next offer is taken instead, in the same header or the next.
            let fallback = format!("{offer}, permessage-deflate");
            assert_eq!(
                answer(&[&fallback], DEDICATED).as_deref(),
                Some("permessage-deflate"),
                "{fallback}"
            );
            assert_eq!(
                answer(&[&offer, "permessage-deflate"], DEDICATED).as_deref(),
                Some("permessage-deflate"),
                "{offer}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_errors() {
        for (header, error) in [
            ("", ExtensionError::Empty),
            (" , ,", ExtensionError::Empty),
            ("permessage-deflate;", ExtensionError::ExpectedToken),
            ("permessage-deflate; ; client_max_window_bits", ExtensionError::ExpectedToken),
            (";permessage-deflate", ExtensionError::ExpectedToken),
            ("permessage-deflate; client_max_window_bits=", ExtensionError::ExpectedValue),
            ("permessage-deflate; client_max_window_bits=,", ExtensionError::ExpectedValue),
            (
                "permessage-deflate; client_max_window_bits=\"10",
                ExtensionError::InvalidQuotedString,
            ),
            (
                "permessage-deflate; client_max_window_bits=\"\"",
                ExtensionError::InvalidQuotedString,
            ),
            (
                "permessage-deflate; client_max_window_bits=\"1 0\"",
                ExtensionError::InvalidQuotedString,
            ),
            ("permessage-deflate; a=\"\\", ExtensionError::InvalidQuotedString),
            ("permessage deflate", ExtensionError::UnexpectedCharacter),
            (
                "permessage-deflate; client_max_window_bits=10 11",
                ExtensionError::UnexpectedCharacter,
            ),
            (
                "permessage-deflate; server_no_context_takeover x",
                ExtensionError::UnexpectedCharacter,
            ),
            ("permessage-deflate=1", ExtensionError::UnexpectedCharacter),
            ("pérmessage-deflate", ExtensionError::UnexpectedCharacter),
            ("permessage-deflate; é", ExtensionError::ExpectedToken),
        ] {
            assert_eq!(agree(&[header], DEDICATED), Err(error), "{header:?}");
        }
        // A malformed header after an acceptable offer still fails the request.
        assert_eq!(
            agree(&["permessage-deflate", "foo;;"], DEDICATED),
            Err(ExtensionError::ExpectedToken)
        );
    }
}
