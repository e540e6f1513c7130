//! Server processes of the suite: toolchain checks, builds, start pinned to a core, wait
//! until listening, stop.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::matrix::ServerSpec;

/// The first program of `needs` missing from PATH, if any.
pub fn missing_tool(needs: &[String]) -> Option<String> {
    needs.iter().find(|t| find_on_path(t).is_none()).cloned()
}

/// Where `program` is on PATH.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Runs one build command from `root`, its output into `log`; `Err` says why it failed.
pub fn build(root: &Path, cmd: &[String], log: &Path) -> Result<(), String> {
    let (program, args) = cmd.split_first().ok_or("an empty build command")?;
    let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status}); see {}", cmd.join(" "), log.display()))
    }
}

/// A port nothing listens on, above `after` (a new one per run: no run meets the
/// TIME_WAIT sockets of the one before).
pub fn free_port(after: u16) -> Option<u16> {
    (after.max(19_200)..30_000)
        .chain(19_200..after.max(19_200))
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// Its process id (taskset execs the server: the same process).
    pub pid: u32,
    /// Its port.
    pub port: u16,
}

impl Server {
    /// Starts `spec` on `port`, pinned to `core`, output into `log`, and waits until it
    /// accepts connections.
    ///
    /// # Errors
    /// Why it did not start, or did not listen within 15 s.
    pub fn start(
        root: &Path,
        spec: &ServerSpec,
        port: u16,
        core: usize,
        log: &Path,
    ) -> Result<Server, String> {
        let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let argv: Vec<String> =
            spec.run.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .args(&argv)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run taskset {}: {e}", argv.join(" ")))?;
        let pid = child.id();
        let mut server = Server { child, pid, port };
        server.wait_listening(Duration::from_secs(15))?;
        Ok(server)
    }

    fn wait_listening(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited at start with {status}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Let it notice the probe's close before anyone counts its descriptors.
                std::thread::sleep(Duration::from_millis(300));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("did not listen on port {} within {limit:?}", self.port))
    }

    /// Whether it exited on its own.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// Stops it: SIGTERM, then SIGKILL after 3 s.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchains_are_found_on_path() {
        assert!(find_on_path("sh").is_some());
        assert_eq!(missing_tool(&["sh".into()]), None);
        assert_eq!(
            missing_tool(&["sh".into(), "no-such-tool-wsloop".into()]),
            Some("no-such-tool-wsloop".into())
        );
        let p = free_port(20_000).expect("a free port");
        assert!((19_200..30_000).contains(&p));
    }
}
