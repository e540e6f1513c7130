//! `Server`: binds the listeners, starts the reactor and worker threads, and stops them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded, unbounded};
use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::cluster;
use crate::config::{Config, Dispatch};
use crate::dispatch::{
    self, Budget, Dispatcher, Doorbell, Envelope, Events, Handler, WorkerOutlets,
};
use crate::error::Error;
use crate::handle::{Handle, Remote, Shared};
use crate::liveness::LiveTable;
use crate::metrics::Counters;
use crate::pubsub::Topics;
use crate::reactor::{LISTENER, Reactor, ReactorParts, WAKER};

/// A running server. Dropping it shuts it down and waits for its threads.
///
/// # Examples
/// ```no_run
/// use wsloop::{Config, ConnId, Handle, Handler, Message, Server};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
///         let _ = handle.send(id, message);
///     }
/// }
///
/// let server = Server::start(Config::default(), Echo)?;
/// println!("listening on ws://{}", server.local_addr());
/// server.join();
/// # Ok::<(), wsloop::Error>(())
/// ```
pub struct Server {
    handle: Handle,
    local_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.local_addr).finish()
    }
}

enum Outlet {
    Handler(Arc<dyn Handler>),
    Channel(Sender<Vec<Envelope>>, Arc<Budget>),
}

impl Server {
    /// Binds, starts the threads and returns at once; `handler` gets every event.
    ///
    /// # Errors
    /// An invalid config, an address that cannot be bound, or an OS refusal.
    pub fn start<H: Handler>(config: Config, handler: H) -> Result<Server, Error> {
        Server::launch(config, Outlet::Handler(Arc::new(handler)))
    }

    /// Binds, starts the reactors and returns the events as a receiver, for applications
    /// that run their own threads. `dispatch` and `workers` are ignored.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub fn start_with_events(config: Config) -> Result<(Server, Events), Error> {
        let (tx, rx) = bounded(config.worker_queue);
        let budget = Arc::new(Budget::new(1, config.worker_queue_bytes));
        let server = Server::launch(config, Outlet::Channel(tx, budget.clone()))?;
        let events = Events::new(rx, budget, server.handle());
        Ok((server, events))
    }

    /// A handle to send to and close connections from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The bound address (with the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has shut down (through `Handle::shutdown`) and every
    /// thread has ended.
    pub fn join(mut self) {
        self.join_threads();
    }

    /// Shuts down and waits for the threads.
    pub fn stop(self) {
        self.handle.shutdown();
        self.join();
    }

    fn join_threads(&mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    fn launch(config: Config, outlet: Outlet) -> Result<Server, Error> {
        config.validate()?;
        let config = Arc::new(config);
        let listeners = bind_all(&config)?;
        let local_addr = listeners[0].local_addr().map_err(Error::Io)?;
        let (cluster, link) = match &config.cluster {
            Some(c) => {
                let (cluster, link) =
                    cluster::prepare(c, config.max_message_size).map_err(Error::Io)?;
                (Some(cluster), Some(link))
            }
            None => (None, None),
        };
        let node = cluster.as_ref().map_or(0, |c| c.node);
        let mut remotes = Vec::new();
        let mut parts = Vec::new();
        for (index, mut listener) in listeners.into_iter().enumerate() {
            let poll = Poll::new().map_err(Error::Io)?;
            poll.registry()
                .register(&mut listener, LISTENER, Interest::READABLE)
                .map_err(Error::Io)?;
            let waker = Waker::new(poll.registry(), WAKER).map_err(Error::Io)?;
            let (tx, rx) = unbounded();
            remotes.push(Remote {
                index,
                commands: tx,
                waker,
                awake: AtomicBool::new(true),
                // Every reactor can hold all the connections: admission counts sockets
                // server-wide, and the kernel may hand any reactor any share of them.
                // Cells come in chunks as slots are first used.
                live: LiveTable::new(config.max_connections),
                fanout_queued: AtomicUsize::new(0),
            });
            parts.push((index, poll, listener, rx));
        }
        let shared = Arc::new(Shared {
            reactors: remotes.into_boxed_slice(),
            open: AtomicUsize::new(0),
            sockets: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            counters: Counters::new(config.reactors),
            readiness: Default::default(),
            max_backpressure: config.max_backpressure,
            backpressure: config.backpressure,
            fanout_limit: config.fanout_queue_bytes,
            compression_threshold: match config.compression {
                crate::config::Compression::Disabled => usize::MAX,
                _ => config.compression_threshold,
            },
            topics: Topics::new(
                config.reactors,
                config.max_topics_per_connection,
                config.max_subscribers_per_topic,
            )
            .with_cluster(cluster.clone()),
            node,
            cluster,
            offline: Default::default(),
            resolver: Default::default(),
            next_dial: AtomicUsize::new(0),
        });
        let handle = Handle { shared: shared.clone() };
        let mut threads = Vec::new();
        let make_dispatcher = dispatchers(&config, outlet, &handle, &mut threads)?;
        for (index, poll, listener, commands) in parts {
            let parts =
                ReactorParts { index, poll, listener, commands, dispatcher: make_dispatcher() };
            let reactor = Reactor::new(parts, shared.clone(), config.clone());
            threads.push(spawn(format!("wsloop-reactor-{index}"), move || {
                crate::event::set_thread_node(node);
                reactor.run()
            })?);
        }
        if let Some(link) = link {
            let handle = handle.clone();
            threads.push(spawn("wsloop-cluster".to_owned(), move || link.run(handle))?);
        }
        log::info!(
            "listening on {local_addr}: {} reactors, {} dispatch",
            config.reactors,
            match config.dispatch {
                Dispatch::Workers => format!("{} workers", config.workers),
                Dispatch::Inline => "inline".to_owned(),
            }
        );
        Ok(Server { handle, local_addr, threads })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.handle.shutdown();
            self.join_threads();
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new().name(name).spawn(f).map_err(Error::Io)
}

/// Starts the workers (if any) and returns a maker of each reactor's dispatcher.
fn dispatchers(
    config: &Config,
    outlet: Outlet,
    handle: &Handle,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<Box<dyn Fn() -> Dispatcher>, Error> {
    match (outlet, config.dispatch) {
        (Outlet::Channel(tx, budget), _) => {
            let reactors = Arc::new(AtomicUsize::new(0));
            Ok(Box::new(move || {
                let outlets = WorkerOutlets { senders: vec![tx.clone()], bells: Vec::new() };
                Dispatcher::queued(outlets, budget.clone(), reactors.clone())
            }))
        }
        (Outlet::Handler(handler), Dispatch::Inline) => {
            let handle = handle.clone();
            Ok(Box::new(move || Dispatcher::Inline {
                handler: handler.clone(),
                handle: handle.clone(),
            }))
        }
        (Outlet::Handler(handler), Dispatch::Workers) => {
            let mut outlets = WorkerOutlets { senders: Vec::new(), bells: Vec::new() };
            let budget = Arc::new(Budget::new(config.workers, config.worker_queue_bytes));
            for index in 0..config.workers {
                let (tx, rx) = bounded(config.worker_queue);
                let bell = Arc::new(Doorbell::default());
                outlets.senders.push(tx);
                outlets.bells.push(bell.clone());
                let (handler, handle) = (handler.clone(), handle.clone());
                let budget = (budget.clone(), index);
                let worker = spawn(format!("wsloop-worker-{index}"), {
                    let bell = bell.clone();
                    move || dispatch::run_worker(handler, handle, (rx, bell), budget)
                })?;
                bell.belongs_to(worker.thread().clone());
                threads.push(worker);
            }
            let reactors = Arc::new(AtomicUsize::new(0));
            Ok(Box::new(move || {
                Dispatcher::queued(outlets.clone(), budget.clone(), reactors.clone())
            }))
        }
    }
}

/// The address `addr` names: its first IPv4 address, else its first; `None` if it names
/// none.
pub(crate) fn resolve(addr: impl ToSocketAddrs) -> Option<SocketAddr> {
    let all: Vec<SocketAddr> = addr.to_socket_addrs().ok()?.collect();
    all.iter().find(|a| a.is_ipv4()).or(all.first()).copied()
}

/// One `SO_REUSEPORT` listener per reactor, all on the same port.
///
/// `SO_REUSEPORT` would also let this server share a port another process listens on,
/// and the kernel would split clients between the two. So the port is first taken by a
/// probe socket without it: that bind fails with `AddrInUse` if anyone listens there
/// (and picks the port when the config asks for port 0). The probe is closed before the
/// reactors bind.
fn bind_all(config: &Config) -> Result<Vec<TcpListener>, Error> {
    let requested = config.addr;
    let mut addr = probe(requested).map_err(|source| Error::Bind { addr: requested, source })?;
    let mut listeners = Vec::with_capacity(config.reactors);
    for _ in 0..config.reactors {
        let listener =
            bind_one(addr, config.backlog).map_err(|source| Error::Bind { addr, source })?;
        // Port 0 picks a free port once; the other reactors share it.
        addr = listener.local_addr().map_err(Error::Io)?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Binds `addr` without `SO_REUSEPORT` and returns the bound address.
fn probe(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Still SO_REUSEADDR: connections of an earlier run in TIME_WAIT must not block a restart.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.local_addr()?.as_socket().ok_or_else(|| std::io::Error::other("not an IP address"))
}

fn bind_one(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}
