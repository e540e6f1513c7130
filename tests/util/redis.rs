//! A real `redis-server` on a free loopback port, for cluster tests. The test command
//! installs it (Debian `redis-server`); a missing binary fails the test, never skips it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process (no persistence), killed when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts one on a free port and waits until it answers PING.
    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Redis { port, child: None };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to its clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a Redis that hangs without closing anything.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not answer on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs one command and returns its raw reply (`None` if Redis is not there).
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out += &format!("${}\r\n{a}\r\n", a.len());
        }
        s.write_all(out.as_bytes()).ok()?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        // Replies here are small; they end with CRLF once complete.
        loop {
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&chunk[..n]);
            if complete(&reply) {
                break;
            }
        }
        Some(String::from_utf8_lossy(&reply).trim_end().to_owned())
    }

    /// Subscribers of `channel` (PUBSUB NUMSUB).
    pub fn numsub(&self, channel: &str) -> usize {
        let reply = self.command(&["PUBSUB", "NUMSUB", channel]).unwrap_or_default();
        reply.rsplit(':').next().and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    }

    /// Channels matching `pattern` with at least one subscriber, sorted.
    pub fn channels(&self, pattern: &str) -> Vec<String> {
        let reply = self.command(&["PUBSUB", "CHANNELS", pattern]).unwrap_or_default();
        let mut lines: Vec<String> = reply
            .split("\r\n")
            .skip(1)
            .filter(|l| !l.starts_with('$'))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }
}

/// Whether a reply of simple lines, integers and one level of bulk arrays is whole.
fn complete(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    if !text.ends_with("\r\n") {
        return false;
    }
    match text.strip_prefix('*').and_then(|t| t.split("\r\n").next()?.parse::<usize>().ok()) {
        // An array of n elements, each one line or a bulk (two lines).
        Some(n) => {
            let lines: Vec<&str> = text.split("\r\n").skip(1).filter(|l| !l.is_empty()).collect();
            let bulks = lines.iter().filter(|l| l.starts_with('$')).count();
            lines.len() >= n + bulks
        }
        None => true,
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
