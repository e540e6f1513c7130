//! Writes a self-signed certificate for `localhost` and `127.0.0.1` with its private key,
//! to try `wss://` locally (the test command's TLS interop uses it):
//!
//! ```text
//! cargo run --example tls_cert -- DIR        # DIR/cert.pem, DIR/key.pem
//! target/release/wsloop --tls-cert DIR/cert.pem --tls-key DIR/key.pem
//! ```
//! Clients must be told to trust DIR/cert.pem (it is its own CA).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: tls_cert DIR")?);
    std::fs::create_dir_all(&dir)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names)?;
    std::fs::write(dir.join("cert.pem"), made.cert.pem())?;
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem())?;
    println!("wrote {0}/cert.pem and {0}/key.pem", dir.display());
    Ok(())
}
