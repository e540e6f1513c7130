//! What worker-pool dispatch allocates per echoed message, counted by a global allocator
//! that counts every allocation in this process.
//!
//! The client writes prebuilt masked frames on a plain `TcpStream` and reads the replies
//! into one buffer, so it allocates nothing per message: what is counted while messages
//! flow is the server's. A worker gets each message as an owned `Message`, copied out of
//! the reactor's receive buffer; an echo sends that buffer back framed in place, and once
//! written the reactor keeps it for the next message (src/dispatch/recycled.rs). So in a
//! steady echo, what is allocated is per batch (a command list, a turn's lists), not per
//! message.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use util::{Echo, config, frame, masked, raw_open};
use wsloop::{Dispatch, Server};

/// The system allocator, counting allocations (reallocations included).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; counting touches no
// memory of the allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `layout` are passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and `new_size` as the caller guarantees it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PAYLOAD: usize = 32;
/// Messages written at once, as a load generator keeps them in flight.
const WINDOW: usize = 16;

/// `WINDOW` masked binary frames of `PAYLOAD` bytes, and the server's replies to them.
fn frames() -> (Vec<u8>, Vec<u8>) {
    let payload: [u8; PAYLOAD] = std::array::from_fn(|i| i as u8);
    let (request, reply) = (masked(true, 0x2, &payload), frame(true, 0x2, &payload, None));
    (request.repeat(WINDOW), reply.repeat(WINDOW))
}

/// Writes `rounds` windows of messages, reading each window's echoes before the next.
fn echo_rounds(stream: &mut TcpStream, request: &[u8], expected: &[u8], rounds: usize) {
    let mut replies = vec![0u8; expected.len()];
    for round in 0..rounds {
        stream.write_all(request).expect("write frames");
        stream.read_exact(&mut replies).expect("read echoes");
        assert!(replies == expected, "round {round}: the echoes differ from the messages");
    }
}

#[test]
fn a_worker_echo_allocates_per_batch_not_per_message() {
    let config = config().reactors(1).workers(1).dispatch(Dispatch::Workers);
    let server = Server::start(config, Echo).expect("server starts");
    let mut stream = raw_open(server.local_addr());
    let (request, expected) = frames();
    // Warm: the reactor's lists and kept buffers reach their working size.
    echo_rounds(&mut stream, &request, &expected, 200);
    const ROUNDS: usize = 1000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    echo_rounds(&mut stream, &request, &expected, ROUNDS);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let messages = ROUNDS * WINDOW;
    drop(stream);
    server.stop();
    let per_message = allocations as f64 / messages as f64;
    eprintln!("{allocations} allocations for {messages} echoed messages ({per_message:.3} each)");
    // Copying each message into a new buffer alone made one per message.
    assert!(
        per_message < 0.5,
        "{allocations} allocations for {messages} messages: {per_message:.2} per message"
    );
}
