//! The orphan guard of throwaway servers (PostgreSQL, MinIO): a small `sh` process reading a
//! pipe from the test process. The kernel closes the pipe when the test process exits, however
//! it exits, and the watchdog then kills the server and removes its directory. A clean stop
//! writes `stopped` first so the watchdog only removes the directory.

use std::io::Write;
use std::process::{Child, ChildStdin};
use std::time::{Duration, Instant};

/// A running watchdog.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pub(crate) child: Child,
    /// Closing it (EOF on the watchdog's stdin) makes the watchdog clean up.
    pub(crate) stdin: Option<ChildStdin>,
}

impl Watchdog {
    /// Let the watchdog clean up now (`stopped`: the server is already down) and wait up to
    /// 30 s for it.
    pub(crate) fn finish(mut self, stopped: bool) {
        let mut stdin = self.stdin.take();
        if stopped && let Some(pipe) = stdin.as_mut() {
            let _ = pipe.write_all(b"stopped\n");
        }
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                _ => return,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
