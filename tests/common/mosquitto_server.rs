//! Debian's `mosquitto` broker as a reference server for tests: a plain
//! listener on a free loopback port, plus the listeners a test adds (TLS,
//! mutual TLS, WebSocket), configured in a scratch directory that also holds
//! the test's certificates. Used by the load tool's tests and the browser
//! interop test; fails (not skips) where /usr/sbin/mosquitto is missing
//! (`scripts/test.sh` installs it). The process is killed by its PID and
//! the directory removed when the [`Mosquitto`] is dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A mosquitto we started.
pub struct Mosquitto {
    child: Child,
    /// Its plain MQTT listener on 127.0.0.1.
    pub port: u16,
    /// Its scratch directory (config, certificates).
    pub dir: PathBuf,
}

impl Mosquitto {
    /// Plain TCP only.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(|_| String::new())
    }

    /// `extra` gets the scratch directory (to write certificates into) and
    /// returns more config: `listener PORT` blocks. They come before the
    /// plain listener, which mosquitto opens last: once it accepts, all are
    /// open. A `protocol websockets` listener of mosquitto 2.0.11 needs
    /// that plain one too (it refuses to start with websockets alone).
    pub fn start_with(extra: impl FnOnce(&Path) -> String) -> Mosquitto {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "{MOSQUITTO} is missing: apt-get install -y mosquitto (scripts/test.sh does)"
        );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("coremq-mosq-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let conf = dir.join("mosquitto.conf");
        let text = format!(
            "allow_anonymous true\nmax_connections -1\nset_tcp_nodelay true\n{}\nlistener {port} 127.0.0.1\n",
            extra(&dir)
        );
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let mut m = Mosquitto { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = m.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "mosquitto did not start on port {port} ({exited:?}); config in {}",
                m.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        // Only our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
