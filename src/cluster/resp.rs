//! A sans-IO RESP3 codec: commands out as arrays of bulk strings, replies in as values.
//!
//! Our own rather than the `redis-protocol` crate: the link needs four commands (HELLO,
//! SUBSCRIBE/UNSUBSCRIBE, PUBLISH, PING) and to read push messages, so the codec is about
//! 150 lines with a length cap we choose, no parser-combinator dependencies, and an
//! incremental `parse` in the house style (`Ok(None)`: need more bytes, nothing used).

/// What the parser refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RespError {
    /// A type byte RESP3 does not have, or a malformed length or number.
    Malformed,
    /// A string or aggregate longer than the cap.
    TooLong,
    /// Aggregates nested deeper than the cap.
    TooDeep,
}

/// One RESP3 value (attributes are skipped; streamed strings are not used by Redis for
/// these commands and are refused as malformed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `+`, and also `,` `(` `#` (doubles, big numbers, booleans) as their text.
    Simple(Vec<u8>),
    /// `-` and `!`.
    Error(Vec<u8>),
    /// `:`.
    Int(i64),
    /// `$` and `=`.
    Bulk(Vec<u8>),
    /// `_` and the RESP2 null bulk/array.
    Null,
    /// `*`, `~` (sets) and `%` (maps, flattened key, value, key, value...).
    Array(Vec<Value>),
    /// `>`: out-of-band messages (pub/sub).
    Push(Vec<Value>),
}

/// Aggregates deeper than this are refused (Redis sends at most 3 levels here).
const MAX_DEPTH: usize = 8;
/// Elements per aggregate.
const MAX_ELEMENTS: usize = 1 << 20;

/// Appends a command (an array of bulk strings) to `out`.
pub(crate) fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The bytes [`command`] writes for `args`.
pub(crate) fn command_len(args: &[&[u8]]) -> usize {
    let digits = |n: usize| n.to_string().len();
    3 + digits(args.len()) + args.iter().map(|a| 5 + digits(a.len()) + a.len()).sum::<usize>()
}

/// Parses one value from the front of `buf`, with strings of at most `max_len` bytes.
/// `Ok(None)` when `buf` holds only part of it.
pub(crate) fn parse(buf: &[u8], max_len: usize) -> Result<Option<(Value, usize)>, RespError> {
    parse_at(buf, 0, max_len, 0)
}

fn parse_at(
    buf: &[u8],
    at: usize,
    max_len: usize,
    depth: usize,
) -> Result<Option<(Value, usize)>, RespError> {
    if depth > MAX_DEPTH {
        return Err(RespError::TooDeep);
    }
    let Some((line, after)) = line(buf, at + 1, max_len)? else { return Ok(None) };
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let value = match kind {
        b'+' | b',' | b'(' | b'#' => Value::Simple(line.to_vec()),
        b'-' => Value::Error(line.to_vec()),
        b':' => Value::Int(number(line)?),
        b'_' => Value::Null,
        b'$' | b'=' | b'!' => return blob(buf, kind, line, after, max_len),
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            return aggregate(buf, kind, line, after, max_len, depth);
        }
        _ => return Err(RespError::Malformed),
    };
    Ok(Some((value, after)))
}

/// The line starting at `from` (without CRLF) and where the next one starts.
fn line(buf: &[u8], from: usize, max_len: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(from..).unwrap_or(&[]);
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&rest[..end], from + end + 2))),
        // A line (not a blob) longer than any we accept will never end well.
        None if rest.len() > max_len.max(64) => Err(RespError::TooLong),
        None => Ok(None),
    }
}

fn number(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()).ok_or(RespError::Malformed)
}

fn blob(
    buf: &[u8],
    kind: u8,
    line: &[u8],
    after: usize,
    max_len: usize,
) -> Result<Option<(Value, usize)>, RespError> {
    let len = number(line)?;
    if len == -1 {
        return Ok(Some((Value::Null, after)));
    }
    let len = usize::try_from(len).map_err(|_| RespError::Malformed)?;
    if len > max_len {
        return Err(RespError::TooLong);
    }
    let Some(data) = buf.get(after..after + len + 2) else { return Ok(None) };
    if &data[len..] != b"\r\n" {
        return Err(RespError::Malformed);
    }
    let bytes = data[..len].to_vec();
    let value = if kind == b'!' { Value::Error(bytes) } else { Value::Bulk(bytes) };
    Ok(Some((value, after + len + 2)))
}

fn aggregate(
    buf: &[u8],
    kind: u8,
    line: &[u8],
    mut at: usize,
    max_len: usize,
    depth: usize,
) -> Result<Option<(Value, usize)>, RespError> {
    let n = number(line)?;
    if n == -1 {
        return Ok(Some((Value::Null, at)));
    }
    let n = usize::try_from(n).map_err(|_| RespError::Malformed)?;
    let n = if kind == b'%' || kind == b'|' { n.saturating_mul(2) } else { n };
    if n > MAX_ELEMENTS {
        return Err(RespError::TooLong);
    }
    let mut items = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let Some((item, next)) = parse_at(buf, at, max_len, depth + 1)? else { return Ok(None) };
        items.push(item);
        at = next;
    }
    match kind {
        // An attribute describes the value after it, which is what the caller wants.
        b'|' => parse_at(buf, at, max_len, depth),
        b'>' => Ok(Some((Value::Push(items), at))),
        _ => Ok(Some((Value::Array(items), at))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        let args: &[&[u8]] = &[b"PUBLISH", b"ch", b"hi\r\n"];
        command(&mut out, args);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\nhi\r\n\r\n");
        assert_eq!(command_len(args), out.len());
    }

    #[test]
    fn a_push_message_parses_and_says_what_it_used() {
        let wire = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\na\r\n\r\n:1\r\n";
        let (value, used) = parse(wire, 1024).unwrap().unwrap();
        assert_eq!(value, Value::Push(vec![bulk("message"), bulk("ch"), bulk("a\r\n")]));
        assert_eq!(parse(&wire[used..], 1024).unwrap(), Some((Value::Int(1), 4)));
        for cut in 0..used {
            assert_eq!(parse(&wire[..cut], 1024), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn hello_maps_errors_nulls_and_attributes() {
        let wire = b"%2\r\n+server\r\n$5\r\nredis\r\n+proto\r\n:3\r\n";
        let (value, _) = parse(wire, 64).unwrap().unwrap();
        let Value::Array(items) = value else { panic!("{value:?}") };
        assert_eq!(items.len(), 4);
        assert_eq!(parse(b"-ERR no\r\n", 64).unwrap().unwrap().0, Value::Error(b"ERR no".to_vec()));
        assert_eq!(parse(b"!2\r\nno\r\n", 64).unwrap().unwrap().0, Value::Error(b"no".to_vec()));
        assert_eq!(parse(b"_\r\n", 64).unwrap().unwrap().0, Value::Null);
        assert_eq!(parse(b"$-1\r\n", 64).unwrap().unwrap().0, Value::Null);
        assert_eq!(parse(b"|1\r\n+k\r\n+v\r\n:7\r\n", 64).unwrap().unwrap(), (Value::Int(7), 16));
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        assert_eq!(parse(b"?x\r\n", 64), Err(RespError::Malformed));
        assert_eq!(parse(b":x\r\n", 64), Err(RespError::Malformed));
        assert_eq!(parse(b"$-5\r\n", 64), Err(RespError::Malformed));
        assert_eq!(parse(b"$100\r\n", 64), Err(RespError::TooLong));
        assert_eq!(parse(b"$2\r\nabcd", 64), Err(RespError::Malformed));
        assert_eq!(parse(b"*99999999\r\n", 64), Err(RespError::TooLong));
        assert_eq!(parse(&[b'+'; 200], 64), Err(RespError::TooLong));
        let deep = "*1\r\n".repeat(20) + ":1\r\n";
        assert_eq!(parse(deep.as_bytes(), 64), Err(RespError::TooDeep));
        // Every prefix of every byte string stays an answer, never a panic.
        let wire = b">3\r\n$7\r\nmessage\r\n%1\r\n=3\r\nabc\r\n~1\r\n#t\r\n";
        for cut in 0..wire.len() {
            let _ = parse(&wire[..cut], 64);
        }
    }
}
