//! The binary as an operator meets it: settings from a file, the environment and flags
//! (in that order of precedence), start-up logs, running out of file descriptors, and a
//! drain on SIGTERM.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::*;

fn wsloop(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(server_binary()).args(args).envs(env.iter().copied()).output().expect("run wsloop")
}

/// `key = value` lines of printed TOML.
fn printed(output: &Output) -> std::collections::HashMap<String, String> {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// A file in the temporary directory, removed when dropped: also when an assertion
/// fails, as the panic unwinds.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("wsloop-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary directory")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_temp_file_is_removed_even_when_its_test_fails() {
    let mut kept = PathBuf::new();
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let file = TempFile::new("removed.toml", "reactors = 1\n");
        kept = file.0.clone();
        assert!(kept.exists());
        panic!("an assertion fails while the file is held");
    }));
    assert!(failed.is_err());
    assert!(!kept.exists(), "{} was left behind", kept.display());
}

#[test]
fn config_file_then_environment_then_flags_take_precedence() {
    let file = TempFile::new(
        "precedence.toml",
        "reactors = 3\nmax_message_size = 1000\ncompression_level = 2\naddr = \"localhost:9100\"\n",
    );
    let env = [("WSLOOP_MAX_MESSAGE_SIZE", "2000"), ("WSLOOP_COMPRESSION_LEVEL", "5")];
    let out =
        wsloop(&["--config", file.path(), "--compression-level", "7", "--print-config"], &env);
    let settings = printed(&out);
    assert_eq!(settings["reactors"], "3", "from the file");
    assert_eq!(settings["max_message_size"], "2000", "the environment beats the file");
    assert_eq!(settings["compression_level"], "7", "a flag beats the environment");
    assert_eq!(settings["addr"], "\"localhost:9100\"");
    assert_eq!(settings["ping_interval"], "30.0", "untouched keys keep their defaults");
    // Every flag has its key: the printed settings name them all.
    let help = String::from_utf8_lossy(&wsloop(&["--help"], &[]).stdout).into_owned();
    for key in settings.keys() {
        assert!(help.contains(&format!("--{}", key.replace('_', "-"))), "no flag for {key}");
    }
}

#[test]
fn an_unknown_key_or_a_bad_value_is_an_error_naming_the_key() {
    for (text, key) in [("bogus = 1\n", "bogus"), ("reactors = \"many\"\n", "reactors")] {
        let file = TempFile::new(&format!("bad-{key}.toml"), text);
        let out = wsloop(&["--config", file.path(), "--print-config"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(&format!("`{key}`")), "{stderr}");
    }
    let out = wsloop(&["--print-config"], &[("WSLOOP_DISPATCH", "sideways")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("WSLOOP_DISPATCH"), "{stderr}");
    let out = wsloop(&["--addr", "127.0.0.1:0", "--idle-timeout=-1"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("idle_timeout"), "{stderr}");
    // Past what TOML holds: refused by name, not dropped with every other flag (which
    // started a server on the default address and settings).
    let huge = u64::MAX.to_string();
    for flag in ["--max-connections", "--busy-poll-us"] {
        let out = wsloop(&["--addr", "127.0.0.1:0", flag, &huge, "--print-config"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let key = flag.trim_start_matches("--").replace('-', "_");
        assert!(!out.status.success() && stderr.contains(&format!("`{key}`")), "{stderr}");
    }
}

/// A server started through `bash -c "<prefix>; exec wsloop ..."`, its stderr collected.
struct Logged {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Logged {
    fn start(prefix: &str, args: &str) -> Logged {
        let command = format!("{prefix}; exec {} --addr 127.0.0.1:0 {args}", server_binary());
        let mut child = Command::new("bash")
            .args(["-c", &command])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit("ws://").next().unwrap().parse().expect("address line");
        Logged { child, addr, stderr }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn start_up_logs_the_settings_and_the_open_file_limit() {
    let server = Logged::start("ulimit -Sn 512", "--reactors 1 --workers 1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("settings:") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    println!("{log}");
    assert!(log.contains("open-file limit raised from 512 to"), "{log}");
    assert!(
        log.contains("settings: ") && log.contains("addr=") && log.contains("max_backpressure=")
    );
}

#[test]
fn out_of_file_descriptors_warns_and_serves_the_backlog_later() {
    let _w = Watchdog::new("fd_exhaustion", Duration::from_secs(60));
    // Soft and hard: the server cannot raise it.
    let server = Logged::start("ulimit -n 64", "--reactors 1 --workers 1");
    let head = request(server.addr, "");
    let mut waiting: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    // While the backlog waits, the server must not spin on its readable listener.
    let pid = server.child.id();
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_seconds(pid) - before;
    let mut answered = 0;
    let mut first_round = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !waiting.is_empty() && Instant::now() < deadline {
        // Whoever got a 101 is held to the end of the round, then closed: that frees
        // descriptors for the backlog.
        let (mut held, mut still) = (Vec::new(), Vec::new());
        for mut s in waiting {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            if status_of(&read_head(&mut s)) == 101 { held.push(s) } else { still.push(s) }
        }
        answered += held.len();
        first_round.get_or_insert(answered);
        waiting = still;
    }
    let log = server.log();
    let warning = log.lines().find(|l| l.contains("accept failed")).unwrap_or("");
    println!(
        "first round answered {first_round:?} of 100; in the end {answered}; \
         {spent:.3} s of CPU in the second the backlog waited\n{warning}"
    );
    assert!(spent < 0.2, "the reactor spun: {spent} s of CPU in one second");
    assert!(first_round.unwrap() < 100, "the limit bit: {first_round:?}");
    assert_eq!(answered, 100, "every client in the backlog was served once fds were freed");
    assert!(warning.contains("out of file descriptors"), "{log}");
    let warnings = log.matches("accept failed").count();
    assert!(warnings <= 31, "at most one warning a second: {warnings}");
}

/// User plus system CPU time of a process, from `/proc/<pid>/stat` (in clock ticks of
/// 10 ms, the kernel's USER_HZ on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The command name may hold spaces; the fields after it are fixed.
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
fn sigterm_makes_readyz_fail_before_connections_close() {
    let _w = Watchdog::new("drain", Duration::from_secs(30));
    let mut server = Logged::start("true", "--reactors 1 --workers 1 --drain-delay 1");
    let addr = server.addr;
    let mut client = connect(addr);
    assert_eq!(http(addr, "GET", "/readyz", "").status, 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ready = http(addr, "GET", "/readyz", "");
    while ready.status == 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        ready = http(addr, "GET", "/readyz", "");
    }
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("shutting down"), "{}", ready.body);
    assert_echo(&mut client, "still served while draining");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn addr_takes_a_host_name_and_a_taken_port_is_refused() {
    let _w = Watchdog::new("addr", Duration::from_secs(20));
    let mut first = Command::new(server_binary())
        .args(["--addr", "localhost:0", "--reactors", "2", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(first.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr: SocketAddr = line.trim().rsplit("ws://").next().unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback(), "{line}");
    assert_echo(&mut connect(addr), "by name");
    let second = wsloop(&["--addr", &addr.to_string()], &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server on {addr} must not start");
    assert!(stderr.contains("Address already in use"), "{stderr}");
    let _ = first.kill();
    let _ = first.wait();
}
