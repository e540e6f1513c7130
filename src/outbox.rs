//! Where a command goes from the thread that makes it.
//!
//! Most sends come from threads wsloop runs itself, and those need no channel per
//! command:
//! - on a reactor thread (an inline handler), a command for that same reactor goes into a
//!   thread-local queue the reactor drains before it writes: no channel, no atomic;
//! - on a worker thread, commands wait in a thread-local outbox until the worker has
//!   handled its batch of events (or 32 of them, or the handler calls `Handle::flush`),
//!   then go to each reactor as one `Command::Batch` (a batch of replies is one channel
//!   operation and at most one wake-up);
//! - any other thread sends each command straight through the reactor's channel.
//!
//! A thread knows its role by the address of its reactor's `Remote` (or its server's
//! `Shared`), compared, never dereferenced.
//!
//! An inline handler's reply to the very connection it is handling needs no command at
//! all. While the reactor hands a connection's bytes to its session, it lends this
//! thread a reply window ([`open_window`]): that connection's id and the reactor's cork
//! buffer. A send to that id made on this thread is framed straight into the buffer
//! ([`reply`]): no queue, no allocation, no atomic. The reactor takes the buffer back
//! ([`close_window`]) and writes it ahead of the connection's queue, in the same write;
//! only what the socket refuses is copied into the queue (and charged).
//!
//! Order is kept. Once a reply cannot go this way (it is to be compressed, or the window
//! is full), or any command for this reactor is made during the window (a close, a
//! publish that may reach the connection), or the session queues a frame of its own (a
//! pong), every later reply takes the queue too, behind what went before.

use std::cell::RefCell;

use crate::event::{ConnId, MessageRef};
use crate::handle::{Command, Remote, Shared};
use crate::protocol::frame::OpCode;
use crate::session::CORK_BYTES;
use crate::wire;

enum Role {
    Direct,
    Reactor { me: *const Remote, own: Vec<Command>, window: Option<Window> },
    Worker { server: *const Shared, pending: Vec<Vec<Command>> },
}

/// A connection's replies, framed while its bytes are handled on its reactor's thread.
struct Window {
    id: ConnId,
    frames: Vec<u8>,
    /// Messages at least this long go through the queue, to be compressed.
    compress_from: usize,
    /// A reply went through the queue: later ones must follow it.
    closed: bool,
    /// Replies framed here (for the server's statistics).
    sent: usize,
}

/// A reply window taken back: the frames to write first, and how many messages they are.
pub(crate) struct Replies {
    pub(crate) frames: Vec<u8>,
    pub(crate) sent: usize,
}

thread_local! {
    static ROLE: RefCell<Role> = const { RefCell::new(Role::Direct) };
}

/// Marks this thread as the reactor behind `me`.
pub(crate) fn become_reactor(me: &Remote) {
    ROLE.with(|r| *r.borrow_mut() = Role::Reactor { me, own: Vec::new(), window: None });
}

/// Marks this thread as a worker of `server`.
pub(crate) fn become_worker(server: &Shared) {
    let pending = (0..server.reactors.len()).map(|_| Vec::new()).collect();
    ROLE.with(|r| *r.borrow_mut() = Role::Worker { server, pending });
}

/// Keeps `command` for later if this thread's role allows; gives it back otherwise.
pub(crate) fn hold(shared: &Shared, remote: &Remote, command: Command) -> Option<Command> {
    ROLE.with(|r| match &mut *r.borrow_mut() {
        Role::Reactor { me, own, window } if std::ptr::eq(*me, remote) => {
            if let Some(window) = window {
                window.closed = true;
            }
            own.push(command);
            None
        }
        Role::Worker { server, pending } if std::ptr::eq(*server, shared) => {
            match pending.get_mut(remote.index) {
                Some(queue) => {
                    queue.push(command);
                    None
                }
                None => Some(command),
            }
        }
        _ => Some(command),
    })
}

/// On a reactor thread: the commands it sent itself, in order (`into` is emptied first).
pub(crate) fn take_own(into: &mut Vec<Command>) {
    ROLE.with(|r| {
        if let Role::Reactor { own, .. } = &mut *r.borrow_mut() {
            std::mem::swap(own, into);
        }
    });
}

/// On a reactor thread: lends `frames` (empty) for replies to `id` until
/// [`close_window`]; messages of `compress_from` bytes or more are left to the queue.
pub(crate) fn open_window(id: ConnId, frames: Vec<u8>, compress_from: usize) {
    ROLE.with(|r| {
        if let Role::Reactor { window, .. } = &mut *r.borrow_mut() {
            *window = Some(Window { id, frames, compress_from, closed: false, sent: 0 });
        }
    });
}

/// Ends the reply window: the frames it holds, to be written before anything queued.
pub(crate) fn close_window() -> Option<Replies> {
    ROLE.with(|r| match &mut *r.borrow_mut() {
        Role::Reactor { window, .. } => {
            window.take().map(|w| Replies { frames: w.frames, sent: w.sent })
        }
        _ => None,
    })
}

/// Sends every later reply of the open window through the queue: the session queued a
/// frame of its own, which they must not overtake.
pub(crate) fn seal_window() {
    ROLE.with(|r| {
        if let Role::Reactor { window: Some(window), .. } = &mut *r.borrow_mut() {
            window.closed = true;
        }
    });
}

/// Frames `message` into the open reply window if it is for `id` on this reactor and
/// may go there; false when it must take the command queue.
#[inline]
pub(crate) fn reply(remote: &Remote, id: ConnId, message: MessageRef<'_>) -> bool {
    ROLE.with(|r| {
        let Role::Reactor { me, window: Some(window), .. } = &mut *r.borrow_mut() else {
            return false;
        };
        if !std::ptr::eq(*me, remote) || window.id != id || window.closed {
            return false;
        }
        let payload = message.as_bytes();
        if payload.len() >= window.compress_from
            || window.frames.len() + wire::frame_len(payload.len()) > CORK_BYTES
        {
            window.closed = true;
            return false;
        }
        let opcode = match message {
            MessageRef::Text(_) => OpCode::Text,
            MessageRef::Binary(_) => OpCode::Binary,
        };
        wire::frame_into(&mut window.frames, opcode, payload);
        window.sent += 1;
        true
    })
}

/// On a worker thread: hands what the batch produced to the reactors.
pub(crate) fn flush_worker(shared: &Shared) {
    ROLE.with(|r| {
        let Role::Worker { pending, .. } = &mut *r.borrow_mut() else { return };
        for (queue, remote) in pending.iter_mut().zip(shared.reactors.iter()) {
            let command = match queue.len() {
                0 => continue,
                // The common case (one reply) keeps the queue's memory for the next call.
                1 => match queue.pop() {
                    Some(command) => command,
                    None => continue,
                },
                // The next batch is likely as long: sized at once, it is not grown (and
                // copied) step by step.
                n => Command::Batch(std::mem::replace(queue, Vec::with_capacity(n))),
            };
            // A reactor that is gone has no use for it.
            let _ = remote.send(command);
        }
    });
}

/// Whether this thread is the reactor behind `remote`.
pub(crate) fn is_reactor(remote: &Remote) -> bool {
    ROLE.with(|r| matches!(&*r.borrow(), Role::Reactor { me, .. } if std::ptr::eq(*me, remote)))
}
