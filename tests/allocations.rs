//! What an echo allocates per message, counted by a global allocator.
//!
//! - Worker-pool dispatch: a worker gets each message as an owned `Message`, copied out
//!   of the reactor's receive buffer; an echo sends that buffer back framed in place, and
//!   once written the reactor keeps it for the next message (src/dispatch/recycled.rs).
//!   So in a steady echo, what is allocated is per batch (a command list, a turn's
//!   lists), not per message.
//! - Inline dispatch, `ws://` and `wss://`: the handler is lent the message and its reply
//!   is framed into the reactor's write buffer (src/outbox.rs): nothing per message
//!   (over TLS, rustls allocates per record).
//!
//! The plain clients write prebuilt masked frames on a `TcpStream` and read the replies
//! into one buffer, so they allocate nothing per message: every allocation in the
//! process counts. The TLS client (rustls, tungstenite) allocates as it likes, so there
//! only the reactor's thread counts: the handler marks it when its connection opens.
//! The tests take turns, so no test counts another's allocations.

#[path = "util/trust.rs"]
mod trust;
mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use util::{Echo, config, frame, masked, raw_open};
use wsloop::{ConnId, ConnectInfo, Dispatch, Handle, Handler, Message, MessageRef, Server};

/// The system allocator, counting allocations (reallocations included): all of them,
/// and those made on marked threads.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static ON_MARKED_THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's allocations count in `ON_MARKED_THREADS` (const: reading it never
    /// allocates).
    static MARKED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if MARKED.try_with(Cell::get).unwrap_or(false) {
        ON_MARKED_THREADS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to the system allocator unchanged; counting touches no
// memory of the allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees for `layout` are passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`, and `new_size` as the caller guarantees it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One test at a time: each counts what its own server allocates.
static TURN: Mutex<()> = Mutex::new(());

const PAYLOAD: usize = 32;
/// Messages written at once, as a load generator keeps them in flight.
const WINDOW: usize = 16;

/// `WINDOW` masked binary frames of `PAYLOAD` bytes, and the server's replies to them.
fn frames() -> (Vec<u8>, Vec<u8>) {
    let payload: [u8; PAYLOAD] = std::array::from_fn(|i| i as u8);
    let (request, reply) = (masked(true, 0x2, &payload), frame(true, 0x2, &payload, None));
    (request.repeat(WINDOW), reply.repeat(WINDOW))
}

/// Allocations per message (counted by `counter`) of a steady echo: `round` echoes
/// `WINDOW` messages; 200 rounds warm up (the reactor's lists and kept buffers reach their
/// working size), then `rounds` are counted.
fn per_message(counter: &AtomicUsize, rounds: usize, mut round: impl FnMut()) -> f64 {
    for _ in 0..200 {
        round();
    }
    let before = counter.load(Ordering::Relaxed);
    for _ in 0..rounds {
        round();
    }
    let allocations = counter.load(Ordering::Relaxed) - before;
    let messages = rounds * WINDOW;
    eprintln!("{allocations} allocations for {messages} echoed messages");
    allocations as f64 / messages as f64
}

/// [`per_message`] over a raw socket to `server`, counting every allocation.
fn allocations_per_message(server: &Server) -> f64 {
    let mut stream = raw_open(server.local_addr());
    let (request, expected) = frames();
    // One buffer for every window's echoes: the client allocates nothing per round.
    let mut replies = vec![0u8; expected.len()];
    per_message(&ALLOCATIONS, 1000, || {
        stream.write_all(&request).expect("write frames");
        stream.read_exact(&mut replies).expect("read echoes");
        assert!(replies == expected, "the echoes differ from the messages");
    })
}

#[test]
fn a_worker_echo_allocates_per_batch_not_per_message() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let config = config().reactors(1).workers(1).dispatch(Dispatch::Workers);
    let server = Server::start(config, Echo).expect("server starts");
    let per_message = allocations_per_message(&server);
    server.stop();
    // Copying each message into a new buffer alone made one per message.
    assert!(per_message < 0.5, "{per_message:.2} allocations per message");
}

/// Echoes what it is lent, and marks its reactor's thread for counting.
struct LentEcho;

impl Handler for LentEcho {
    fn on_connect(&self, _: &Handle, _: ConnectInfo) {
        MARKED.with(|m| m.set(true));
    }

    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }

    fn on_message_ref(&self, handle: &Handle, id: ConnId, message: MessageRef<'_>) {
        let _ = handle.send_ref(id, message);
    }
}

fn inline() -> wsloop::Config {
    config().reactors(1).dispatch(Dispatch::Inline)
}

#[test]
fn an_inline_echo_allocates_nothing_per_message() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(inline(), LentEcho).expect("server starts");
    let per_message = allocations_per_message(&server);
    server.stop();
    // A reply through the command queue allocated its frame: one per message.
    assert!(per_message < 0.1, "{per_message:.2} allocations per message");
}

#[test]
fn an_inline_echo_over_tls_allocates_per_record_not_per_message() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let id = trust::identity();
    let server = Server::start(inline().tls(id.tls.clone()), LentEcho).expect("starts");
    let mut client = trust::wss(server.local_addr(), &id.cert);
    let payload = tungstenite::Message::binary(vec![7u8; PAYLOAD]);
    // Only the reactor's thread counts: the client's allocations are its own.
    let per_message = per_message(&ON_MARKED_THREADS, 500, || {
        for _ in 0..WINDOW {
            client.write(payload.clone()).expect("write");
        }
        client.flush().expect("flush");
        for _ in 0..WINDOW {
            assert_eq!(util::next_message(&mut client), payload);
        }
    });
    server.stop();
    // rustls allocates for each record it decrypts or encrypts: each round's 16
    // messages come in one record and leave in another (0.125 per message). A reply
    // through the command queue allocated its frame besides: over one per message.
    assert!(per_message < 0.5, "{per_message:.2} allocations per message on the reactor");
}
