//! An echo server embedded in a program: `cargo run --example echo -- 127.0.0.1:9001`.

use wsloop::{Config, ConnId, Handle, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
        let _ = handle.send(id, message);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let server = Server::start(Config::default().addr(addr.as_str()), Echo)?;
    println!("echo server on ws://{}", server.local_addr());
    server.join();
    Ok(())
}
