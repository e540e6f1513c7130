//! Name resolution for client connections, off the reactors: one thread per server,
//! started on first use, resolves a host name and sends the address back to the reactor
//! that asked. A blocking `getaddrinfo` therefore never stalls a reactor's sockets.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Weak};

use crossbeam_channel::{Sender, unbounded};
use parking_lot::Mutex;

use crate::event::ConnId;
use crate::handle::{Command, Shared};

struct Job {
    id: ConnId,
    host: String,
    port: u16,
}

/// The resolver thread's inbox, made when first needed.
#[derive(Default)]
pub(crate) struct Resolver {
    jobs: Mutex<Option<Sender<Job>>>,
}

impl Resolver {
    /// Resolves `host:port` for `id`; its reactor gets `Command::Resolved`.
    pub(crate) fn resolve(&self, shared: &Arc<Shared>, id: ConnId, host: &str, port: u16) {
        let job = Job { id, host: host.to_owned(), port };
        let mut jobs = self.jobs.lock();
        let job = match jobs.as_ref() {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => job,
        };
        let (tx, rx) = unbounded::<Job>();
        let weak = Arc::downgrade(shared);
        let started = std::thread::Builder::new().name("wsloop-resolver".into()).spawn(move || {
            for job in rx {
                answer(&weak, job);
            }
        });
        match started {
            Ok(_) => {
                let _ = tx.send(job);
                *jobs = Some(tx);
            }
            // No thread: the attempt fails and is retried like any other.
            Err(e) => reply(&Arc::downgrade(shared), id, Err(e.kind())),
        }
    }
}

fn answer(shared: &Weak<Shared>, job: Job) {
    let result = (job.host.as_str(), job.port)
        .to_socket_addrs()
        .and_then(|mut addrs| addrs.next().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound)))
        .map_err(|e| e.kind());
    reply(shared, job.id, result);
}

fn reply(shared: &Weak<Shared>, id: ConnId, result: Result<SocketAddr, io::ErrorKind>) {
    if let Some(shared) = shared.upgrade()
        && let Some(remote) = shared.reactors.get(id.reactor())
    {
        let _ = remote.send(Command::Resolved { id, result });
    }
}
