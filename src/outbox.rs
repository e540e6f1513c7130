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

use std::cell::RefCell;

use crate::handle::{Command, Remote, Shared};

enum Role {
    Direct,
    Reactor { me: *const Remote, own: Vec<Command> },
    Worker { server: *const Shared, pending: Vec<Vec<Command>> },
}

thread_local! {
    static ROLE: RefCell<Role> = const { RefCell::new(Role::Direct) };
}

/// Marks this thread as the reactor behind `me`.
pub(crate) fn become_reactor(me: &Remote) {
    ROLE.with(|r| *r.borrow_mut() = Role::Reactor { me, own: Vec::new() });
}

/// Marks this thread as a worker of `server`.
pub(crate) fn become_worker(server: &Shared) {
    let pending = (0..server.reactors.len()).map(|_| Vec::new()).collect();
    ROLE.with(|r| *r.borrow_mut() = Role::Worker { server, pending });
}

/// Keeps `command` for later if this thread's role allows; gives it back otherwise.
pub(crate) fn hold(shared: &Shared, remote: &Remote, command: Command) -> Option<Command> {
    ROLE.with(|r| match &mut *r.borrow_mut() {
        Role::Reactor { me, own } if std::ptr::eq(*me, remote) => {
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
                _ => Command::Batch(std::mem::take(queue)),
            };
            // A reactor that is gone has no use for it.
            let _ = remote.send(command);
        }
    });
}
