//! A throwaway PostgreSQL server: `initdb` into a temporary directory, `pg_ctl start` on a free
//! port, stopped and removed on drop — or by a watchdog process when the test process ends
//! without running destructors.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Server settings for tests: loopback only, room for many shard pools and prepared
/// transactions (`max_prepared_transactions`, on every start and restart: two-phase commit needs
/// it), no `fsync` (the data is thrown away, and an operating system crash is not what tests
/// simulate).
///
/// `synchronous_commit` stays on: with it off, a commit is acknowledged before its WAL leaves
/// the server's memory, and `pg_ctl stop -m immediate` — the crash the failover tests inject —
/// would lose acknowledged writes. With `fsync=off` it costs one `write()` per commit.
const SETTINGS: &str = "-c listen_addresses=127.0.0.1 -c max_connections=300 \
                        -c max_prepared_transactions=50 -c fsync=off -c synchronous_commit=on \
                        -c full_page_writes=off";

/// How the error of a search for the server binaries that found none starts.
pub(super) const NO_BINARIES: &str = "no PostgreSQL server binaries";

/// The user that runs the server when the test process is root (`initdb` refuses root).
const SERVICE_USER: &str = "postgres";

/// How many free ports to try when another process takes the chosen one first.
const START_ATTEMPTS: usize = 5;

/// A PostgreSQL server of its own, in a temporary directory, for tests.
///
/// [`PgServer::start`] runs `initdb` (superuser `postgres`, trust authentication, UTF-8, text
/// sorted by ICU `en-US` as in production databases — see [`super::Collation`]) and
/// `pg_ctl start` on a free loopback port. Dropping the server
/// stops it (`pg_ctl stop -m immediate`) and removes its directory.
///
/// [`stop`](PgServer::stop) (`pg_ctl stop -m immediate`, a crash) and
/// [`restart`](PgServer::restart) (same directory, same port, same settings) let failover
/// tests take a server away and bring it back.
///
/// When the process runs as root, every PostgreSQL program runs as the `postgres` user through
/// `runuser`, and the directory belongs to that user.
///
/// A process can end without running destructors (a `static` is never dropped; a test binary
/// exits with `std::process::exit`; a signal kills it). So `start` also spawns a small watchdog
/// shell, in its own process group, that holds the read end of a pipe whose write end only this
/// process has: when the process ends, however it ends, the pipe closes and the watchdog stops
/// the server and removes the directory.
///
/// # Examples
///
/// ```no_run
/// use grant_sharding::testing::postgres::PgServer;
/// let server = PgServer::start().expect("PostgreSQL server binaries");
/// let url = server.url("postgres"); // postgres://postgres@127.0.0.1:<port>/postgres
/// # drop(url);
/// ```
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    run_as: Option<&'static str>,
    port: u16,
    data: PathBuf,
    running: bool,
    watchdog: Option<Watchdog>,
    // Declared last: removed after the server has stopped.
    dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Watchdog {
    child: Child,
    /// The write end of the watchdog's stdin; closing it (drop, or process exit) wakes it.
    pipe: Option<ChildStdin>,
}

impl PgServer {
    /// Initializes and starts a new server in a fresh temporary directory.
    ///
    /// The binaries are found in `$GRANT_PG_BIN`, on `PATH`, or in the usual install folders
    /// (`/usr/lib/postgresql/<version>/bin`, newest first, `/usr/pgsql-<version>/bin`,
    /// `/usr/local/pgsql/bin`).
    ///
    /// # Errors
    ///
    /// A message saying what is missing or what failed: no `initdb`/`pg_ctl`, running as root
    /// without a `postgres` user or `runuser`, `initdb` failing, or the server not starting
    /// (with the end of its log).
    pub fn start() -> Result<PgServer, String> {
        let bin = find_bin_dir()?;
        let run_as = if is_root() {
            Some(service_user()?)
        } else {
            None
        };
        let dir = make_dir(run_as)?;
        let data = dir.path().join("data");
        let mut server = PgServer {
            bin,
            run_as,
            port: 0,
            data,
            running: false,
            watchdog: None,
            dir,
        };
        // The watchdog comes first so that even a start cut short is cleaned up.
        server.watchdog = server.spawn_watchdog();
        server.initdb()?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match server.pg_ctl_start(port) {
                Ok(()) => {
                    server.port = port;
                    server.running = true;
                    return Ok(server);
                }
                Err(e) if e.port_taken => last = e.message,
                Err(e) => return Err(e.message),
            }
        }
        Err(last)
    }

    /// Starts a streaming replica of this server: `pg_basebackup -R` into a new temporary
    /// directory, then `pg_ctl start` on another free port. The replica is read-only, follows
    /// the primary, and is stopped and removed like any [`PgServer`].
    ///
    /// # Errors
    ///
    /// A message naming the step that failed (`pg_basebackup` or the start, with its log).
    pub fn start_replica(&self) -> Result<PgServer, String> {
        let dir = make_dir(self.run_as)?;
        let data = dir.path().join("data");
        let mut replica = PgServer {
            bin: self.bin.clone(),
            run_as: self.run_as,
            port: 0,
            data,
            running: false,
            watchdog: None,
            dir,
        };
        replica.watchdog = replica.spawn_watchdog();
        let mut cmd = replica.command("pg_basebackup");
        cmd.arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg("postgres")
            .arg("-D")
            .arg(&replica.data)
            .args(["-R", "-X", "stream", "--no-sync", "-c", "fast"]);
        replica.run(cmd, "pg_basebackup")?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match replica.pg_ctl_start(port) {
                Ok(()) => {
                    replica.port = port;
                    replica.running = true;
                    return Ok(replica);
                }
                Err(e) if e.port_taken => last = e.message,
                Err(e) => return Err(e.message),
            }
        }
        Err(last)
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory (inside its temporary directory).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The URL of `database` on this server, as the superuser `postgres` (trust authentication,
    /// no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Whether the server is running (started and not stopped since).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Starts the server again after [`stop`](Self::stop): same data directory, same port, same
    /// settings (`max_prepared_transactions` included); returns when it accepts connections
    /// (`pg_ctl start -w`). A server stopped with `-m immediate` runs crash recovery first, so
    /// every committed transaction is back. A replica resumes following its primary. Does
    /// nothing when the server is running.
    ///
    /// # Errors
    ///
    /// A message with the end of the server log when it does not come back, e.g. because
    /// another process took its port meanwhile.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.running {
            return Ok(());
        }
        self.pg_ctl_start(self.port).map_err(|e| {
            format!(
                "restarting the server of {} on port {}: {}",
                self.data.display(),
                self.port,
                e.message
            )
        })?;
        self.running = true;
        Ok(())
    }

    /// Stops the server now with `pg_ctl stop -m immediate` — no checkpoint, connections cut,
    /// like a crash; [`restart`](Self::restart) brings it back. Dropping the server does this
    /// too.
    ///
    /// # Errors
    ///
    /// `pg_ctl`'s message when it cannot stop the server.
    pub fn stop(&mut self) -> Result<(), String> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"]);
        self.run(cmd, "pg_ctl stop")
    }

    /// A command for one of the server's programs, as the service user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut cmd = Command::new(runuser());
                cmd.args(["-u", user, "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        }
    }

    /// Runs `cmd` to completion, its output into a file of the server's directory (never a pipe:
    /// a daemon inheriting it would keep the pipe open).
    fn run(&self, mut cmd: Command, what: &str) -> Result<(), String> {
        let out_path = self
            .dir
            .path()
            .join(format!("{}.out", what.replace(' ', "_")));
        let out = File::create(&out_path)
            .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        let status = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| format!("cannot run {what} ({cmd:?}): {e}"))?;
        if status.success() {
            return Ok(());
        }
        let output = fs::read_to_string(&out_path).unwrap_or_default();
        Err(format!("{what} failed ({status}): {}", output.trim()))
    }

    fn initdb(&self) -> Result<(), String> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&self.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--locale-provider=icu",
            "--icu-locale=en-US",
            "--locale=C.utf8",
            "--encoding=UTF8",
            "--no-sync",
        ]);
        self.run(cmd, "initdb")
    }

    fn pg_ctl_start(&self, port: u16) -> Result<(), StartError> {
        let log = self.dir.path().join("log");
        let options = format!(
            "-p {port} -k {} {SETTINGS}",
            shell_quote(&self.dir.path().display().to_string())
        );
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"]);
        match self.run(cmd, "pg_ctl start") {
            Ok(()) => Ok(()),
            Err(message) => {
                // A server that came up too slowly may still be running: stop it.
                let mut stop = self.command("pg_ctl");
                stop.arg("-D")
                    .arg(&self.data)
                    .args(["stop", "-m", "immediate", "-w"]);
                let _ = self.run(stop, "pg_ctl stop");
                let log = fs::read_to_string(&log).unwrap_or_default();
                let _ = fs::remove_file(self.dir.path().join("log"));
                let port_taken = log.contains("could not bind")
                    || log.contains("Address already in use")
                    || log.contains("could not create any TCP/IP sockets");
                let mut message = message;
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                if !tail.is_empty() {
                    let _ = write!(message, "\nserver log (last lines):");
                    for line in tail.into_iter().rev() {
                        let _ = write!(message, "\n  {line}");
                    }
                }
                Err(StartError {
                    message,
                    port_taken,
                })
            }
        }
    }

    /// Spawns the watchdog: `sh` in its own process group, waiting for EOF on stdin, then
    /// stopping the server and removing the directory. Runs as the current user (as root it
    /// can remove everything; `pg_ctl` goes through `runuser`).
    fn spawn_watchdog(&self) -> Option<Watchdog> {
        const SCRIPT: &str = r#"trap '' HUP INT TERM PIPE
cat >/dev/null
if [ -n "$4" ]; then
  "$5" -u "$4" -- "$1" -D "$2" stop -m immediate -w >/dev/null 2>&1
else
  "$1" -D "$2" stop -m immediate -w >/dev/null 2>&1
fi
rm -rf "$3""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("grant-pg-watchdog")
            .arg(self.bin.join("pg_ctl"))
            .arg(&self.data)
            .arg(self.dir.path())
            .arg(self.run_as.unwrap_or(""))
            .arg(runuser())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: a Ctrl-C to the test run must not kill the cleanup.
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().ok()?;
        let pipe = child.stdin.take();
        Some(Watchdog { child, pipe })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.stop();
        if let Some(mut watchdog) = self.watchdog.take() {
            // EOF wakes the watchdog: it finds the server stopped and removes the directory.
            // Wait for it, so that it and `TempDir`'s own removal don't race.
            drop(watchdog.pipe.take());
            let _ = watchdog.child.wait();
        }
    }
}

struct StartError {
    message: String,
    port_taken: bool,
}

/// A free loopback port: bind port 0, read the port the system chose, release it.
fn free_port() -> Result<u16, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free TCP port on 127.0.0.1: {e}"))
}

/// Single-quotes `s` for `sh` (pg_ctl passes `-o` through the shell).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether the effective user is root: `/proc/self/status` where there is one, else `id -u`.
fn is_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status")
        && let Some(uids) = status.lines().find_map(|l| l.strip_prefix("Uid:"))
    {
        // Real, effective, saved, filesystem.
        return uids.split_whitespace().nth(1) == Some("0");
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `runuser`'s path (it lives in sbin, which a non-login PATH may lack).
fn runuser() -> PathBuf {
    let candidates = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| on_path("runuser"))
        .unwrap_or_else(|| PathBuf::from("runuser"))
}

/// Checks that root can run programs as the service user.
fn service_user() -> Result<&'static str, String> {
    let known = Command::new("id")
        .args(["-u", SERVICE_USER])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !known {
        return Err(format!(
            "running as root, and initdb refuses root, but there is no `{SERVICE_USER}` user to \
             run PostgreSQL as (create it, e.g. `useradd --system {SERVICE_USER}`, or set \
             GRANT_PG_URL)"
        ));
    }
    let runuser = runuser();
    if !runuser.is_file() && on_path("runuser").is_none() {
        return Err(format!(
            "running as root, and initdb refuses root, but `runuser` (util-linux) is missing to \
             run PostgreSQL as `{SERVICE_USER}`"
        ));
    }
    Ok(SERVICE_USER)
}

/// A fresh temporary directory the server's user can write, with a path short enough for the
/// Unix socket inside it (`<dir>/.s.PGSQL.<port>` must fit in 107 bytes).
fn make_dir(run_as: Option<&str>) -> Result<tempfile::TempDir, String> {
    let mut parents = vec![std::env::temp_dir()];
    let tmp = PathBuf::from("/tmp");
    if parents[0] != tmp && tmp.is_dir() {
        parents.push(tmp);
    }
    let mut errors = Vec::new();
    for parent in parents {
        if parent.as_os_str().len() > 70 {
            errors.push(format!("{}: path too long for a socket", parent.display()));
            continue;
        }
        let dir = match tempfile::Builder::new()
            .prefix("grant-pg-")
            .tempdir_in(&parent)
        {
            Ok(dir) => dir,
            Err(e) => {
                errors.push(format!("{}: {e}", parent.display()));
                continue;
            }
        };
        let Some(user) = run_as else {
            return Ok(dir);
        };
        let owned = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:{user}"))
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        // The user must also reach the directory through its parents.
        let writable = owned
            && Command::new(runuser())
                .args(["-u", user, "--", "test", "-w"])
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if writable {
            return Ok(dir);
        }
        errors.push(format!(
            "{}: user `{user}` cannot write there",
            dir.path().display()
        ));
    }
    Err(format!(
        "no temporary directory for the server: {}",
        errors.join("; ")
    ))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The folder holding `initdb` and `pg_ctl`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("GRANT_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_both(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "GRANT_PG_BIN={} holds no initdb and pg_ctl",
                dir.display()
            ))
        };
    }
    if let Some(initdb) = on_path("initdb") {
        // Follow a symlink (`/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb`) to
        // the folder that also holds the other programs (`pg_basebackup`, ...).
        let real = fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let linked = initdb.parent().map(Path::to_path_buf);
        if let Some(dir) = real.into_iter().chain(linked).find(|d| has_both(d)) {
            return Ok(dir);
        }
    }
    // Versioned installs, newest version first.
    let mut versioned: Vec<(u32, PathBuf)> = Vec::new();
    for (root, stem) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        let Ok(entries) = fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = name.strip_prefix(stem) else {
                continue;
            };
            let major = version
                .split('.')
                .next()
                .and_then(|v| v.parse::<u32>().ok());
            let dir = entry.path().join("bin");
            if let Some(major) = major
                && has_both(&dir)
            {
                versioned.push((major, dir));
            }
        }
    }
    versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    if let Some((_, dir)) = versioned.into_iter().next() {
        return Ok(dir);
    }
    let fixed = PathBuf::from("/usr/local/pgsql/bin");
    if has_both(&fixed) {
        return Ok(fixed);
    }
    Err(format!(
        "{NO_BINARIES} (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin; install the \
         `postgresql` package or set GRANT_PG_BIN or GRANT_PG_URL"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
