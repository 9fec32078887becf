//! The local provider: PostgreSQL or MariaDB servers started from this
//! machine's binaries, each in its own dir under the cluster dir.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::tmp::{SERVER_PID_FILE, log_tail};
use super::{ClusterError, DATABASE, PASSWORD, Server, USER, bins, parallel, proc};
use crate::backend::BackendKind;

/// How long one server may take to accept logins (`SHARDGATE_CLUSTER_TIMEOUT`
/// seconds, default 90: generous because tests start many servers at once on
/// small machines).
fn startup_timeout() -> Duration {
    let secs = std::env::var("SHARDGATE_CLUSTER_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(90);
    Duration::from_secs(secs)
}

/// How many times a server start is retried when its port was taken between
/// choosing it and binding it.
const PORT_ATTEMPTS: usize = 4;

/// Unix socket paths are limited to 108 bytes (sun_path).
const MAX_SOCKET_PATH: usize = 100;

/// A free TCP port on 127.0.0.1, as the OS hands it out. Ports handed out to
/// this process before are skipped, so parallel starts never share one.
fn free_port() -> Result<u16, ClusterError> {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|source| ClusterError::Io { context: "binding 127.0.0.1:0 to find a free port".into(), source })?;
        let port = listener
            .local_addr()
            .map_err(|source| ClusterError::Io { context: "reading a free port".into(), source })?;
        let mut set = handed_out.lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(port.port()) {
            return Ok(port.port());
        }
    }
    Err(ClusterError::Io {
        context: "finding a free port".into(),
        source: std::io::Error::other("the OS kept handing out ports already in use"),
    })
}

/// The user and group server processes run as: `postgres` for PostgreSQL
/// when running as root (PostgreSQL refuses root), else none (no change).
fn run_as(kind: BackendKind) -> Result<Option<(u32, u32)>, ClusterError> {
    // SAFETY: geteuid has no preconditions.
    if kind != BackendKind::Postgres || unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    static POSTGRES_USER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    let ids = POSTGRES_USER.get_or_init(|| {
        let name = std::ffi::CString::new("postgres").ok()?;
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getpwnam_r writes into our buffers, sized as passed.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
    });
    ids.map(Some).ok_or_else(|| ClusterError::BinaryNotFound {
        what: "system user `postgres` (PostgreSQL will not run as root)".into(),
        hint: "install postgresql (it creates the user) or run as a non-root user".into(),
    })
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

fn mkdir(path: &Path, owner: Option<(u32, u32)>, mode: u32) -> Result<(), ClusterError> {
    std::fs::create_dir_all(path).map_err(io_err(format!("creating {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err(format!("chown {}", path.display())))?;
    }
    Ok(())
}

fn log_file(path: &Path) -> Result<File, ClusterError> {
    File::options().create(true).append(true).open(path).map_err(io_err(format!("opening {}", path.display())))
}

/// Runs a short-lived setup command (initdb, install-db) with its output in
/// `log`, failing with the log tail.
fn run_logged(mut cmd: Command, log: &Path, server: &str, what: &str) -> Result<(), ClusterError> {
    let out = log_file(log)?;
    let err = out.try_clone().map_err(io_err("duplicating a log fd"))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    proc::die_with_parent(&mut cmd, libc::SIGKILL);
    let status = cmd.status().map_err(io_err(format!("running {what} for {server}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(ClusterError::CommandFailed {
            server: server.into(),
            command: what.into(),
            status: status.to_string(),
            output: log_tail(log, 30),
        })
    }
}

/// A client command run against a server's local socket as its superuser;
/// returns whether it succeeded and its combined output.
fn admin(mut cmd: Command) -> (bool, String) {
    cmd.stdin(Stdio::null());
    proc::die_with_parent(&mut cmd, libc::SIGKILL);
    match cmd.output() {
        Ok(out) => (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// One running server process of a local cluster.
pub(crate) struct ServerProc {
    pub name: String,
    kind: BackendKind,
    child: Child,
}

impl ServerProc {
    /// PostgreSQL: SIGQUIT (immediate shutdown: the data is thrown away
    /// anyway); MariaDB: SIGTERM; SIGKILL for both after a few seconds.
    fn stop(&mut self) {
        let signal = match self.kind {
            BackendKind::Postgres => libc::SIGQUIT,
            BackendKind::Mysql => libc::SIGTERM,
        };
        proc::stop_child(&mut self.child, signal, Duration::from_secs(5));
    }

    fn kill(&mut self) {
        proc::stop_child(&mut self.child, libc::SIGKILL, Duration::ZERO);
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The running servers of a local cluster.
#[derive(Default)]
pub(crate) struct Processes {
    procs: Vec<ServerProc>,
}

impl Processes {
    /// Stops all servers, in parallel.
    pub(crate) fn stop_all(&mut self) {
        std::thread::scope(|s| {
            for p in &mut self.procs {
                s.spawn(|| p.stop());
            }
        });
        self.procs.clear();
    }

    /// Kills one server with SIGKILL (simulates a crashed shard).
    pub(crate) fn kill(&mut self, name: &str) -> bool {
        match self.procs.iter_mut().find(|p| p.name == name) {
            Some(p) => {
                p.kill();
                true
            }
            None => false,
        }
    }
}

/// Starts one server per name under `dir`, in parallel.
pub(crate) fn start(kind: BackendKind, dir: &Path, names: &[String]) -> Result<(Vec<Server>, Processes), ClusterError> {
    // Resolve binaries and users once, before the threads.
    match kind {
        BackendKind::Postgres => {
            bins::postgres()?;
            if run_as(kind)?.is_some() {
                check_reachable_by_others(dir)?;
            }
        }
        BackendKind::Mysql => {
            bins::mysql()?;
        }
    }
    bins::client(kind)?;
    let results = parallel(names, |name| start_one(kind, dir, name));
    let mut servers = Vec::new();
    let mut procs = Processes::default();
    let mut first_err = None;
    for result in results {
        match result {
            Ok((server, p)) => {
                servers.push(server);
                procs.procs.push(p);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => {
            procs.stop_all();
            Err(e)
        }
        None => Ok((servers, procs)),
    }
}

/// When servers run as another user, every dir above the cluster dir must let
/// others pass (mode o+x); `mktemp -d` dirs, for one, do not.
fn check_reachable_by_others(dir: &Path) -> Result<(), ClusterError> {
    for ancestor in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)
            .map_err(io_err(format!("reading {}", ancestor.display())))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(ClusterError::InvalidSpec(format!(
                "{} is not searchable by other users (mode {:o}), so the `postgres` user \
                 cannot reach the data dirs below it; `chmod o+x` it or set \
                 SHARDGATE_TMPDIR to another dir",
                ancestor.display(),
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

/// The server's paths.
struct Layout {
    dir: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    log: PathBuf,
}

fn start_one(kind: BackendKind, cluster_dir: &Path, name: &str) -> Result<(Server, ServerProc), ClusterError> {
    let dir = cluster_dir.join(name);
    let layout = Layout { data: dir.join("data"), sock: dir.join("sock"), log: dir.join("server.log"), dir };
    let socket_len = layout.sock.as_os_str().len() + "/.s.PGSQL.65535".len();
    if socket_len > MAX_SOCKET_PATH {
        return Err(ClusterError::InvalidSpec(format!(
            "socket paths under {} would be too long for a unix socket; \
             set SHARDGATE_TMPDIR to a shorter dir",
            cluster_dir.display()
        )));
    }
    let owner = run_as(kind)?;
    mkdir(&layout.dir, owner, 0o755)?;
    mkdir(&layout.data, owner, 0o700)?;
    mkdir(&layout.sock, owner, 0o755)?;
    match kind {
        BackendKind::Postgres => init_postgres(&layout, name, owner)?,
        BackendKind::Mysql => init_mysql(&layout, name)?,
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        let mut cmd = match kind {
            BackendKind::Postgres => postgres_command(&layout, port),
            BackendKind::Mysql => mysql_command(&layout, port)?,
        };
        if let Some((uid, gid)) = owner {
            cmd.uid(uid).gid(gid);
        }
        let log_start = std::fs::metadata(&layout.log).map(|m| m.len()).unwrap_or(0);
        let out = log_file(&layout.log)?;
        let err = out.try_clone().map_err(io_err("duplicating a log fd"))?;
        cmd.current_dir(&layout.dir).stdin(Stdio::null()).stdout(out).stderr(err);
        let death_signal = match kind {
            // Immediate shutdown: the postmaster takes its backends along.
            BackendKind::Postgres => libc::SIGQUIT,
            BackendKind::Mysql => libc::SIGKILL,
        };
        let child =
            proc::spawn_server(cmd, death_signal).map_err(io_err(format!("starting the {kind} server {name}")))?;
        let _ = std::fs::write(layout.dir.join(SERVER_PID_FILE), format!("{}\n", child.id()));
        let mut sp = ServerProc { name: name.to_string(), kind, child };
        match wait_ready(&mut sp, &layout, port, log_start) {
            Ok(()) => {}
            Err(Wait::PortTaken) if attempt < PORT_ATTEMPTS => continue,
            Err(Wait::PortTaken) => {
                return Err(ClusterError::ExitedEarly {
                    server: name.into(),
                    status: format!("port taken {attempt} times"),
                    log: layout.log.clone(),
                    tail: log_tail(&layout.log, 30),
                });
            }
            Err(Wait::Failed(e)) => return Err(e),
        }
        let server = Server {
            name: name.to_string(),
            kind,
            host: "127.0.0.1".into(),
            port,
            user: USER.into(),
            password: PASSWORD.into(),
            database: DATABASE.into(),
            pid: Some(sp.child.id()),
        };
        create_user_and_database(kind, &layout, port, name)?;
        // The real login check: over TCP, with the password.
        let answer = server.query("SELECT 1")?;
        if answer != "1" {
            return Err(ClusterError::Query {
                server: name.into(),
                message: format!("login check answered {answer:?} to SELECT 1"),
            });
        }
        return Ok((server, sp));
    }
}

fn init_postgres(l: &Layout, name: &str, owner: Option<(u32, u32)>) -> Result<(), ClusterError> {
    let bins = bins::postgres()?;
    let mut cmd = Command::new(&bins.initdb);
    cmd.arg("-D")
        .arg(&l.data)
        .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"])
        // Pinned collation: ICU en-US for text, C for the libc locale, so
        // shards and the reference server sort identically on any machine.
        .args(["--locale-provider=icu", "--icu-locale=en-US", "-E", "UTF8", "--locale=C"])
        .arg("--no-sync")
        .current_dir(&l.dir)
        .env("LC_ALL", "C");
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    run_logged(cmd, &l.dir.join("initdb.log"), name, "initdb")
}

fn postgres_command(l: &Layout, port: u16) -> Command {
    let bins = bins::postgres().expect("resolved before starting");
    let mut cmd = Command::new(&bins.postgres);
    cmd.arg("-D").arg(&l.data).arg("-p").arg(port.to_string());
    let sock = format!("unix_socket_directories={}", l.sock.display());
    for setting in [
        "listen_addresses=127.0.0.1",
        sock.as_str(),
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
        "shared_buffers=16MB",
        "max_connections=200",
        "logging_collector=off",
        "log_destination=stderr",
    ] {
        cmd.arg("-c").arg(setting);
    }
    cmd.env("LC_ALL", "C");
    cmd
}

fn mysql_socket(l: &Layout) -> PathBuf {
    l.sock.join("mysqld.sock")
}

/// `--user=root` is needed to run mariadbd as root; it then does not change
/// credentials (which would clear the death signal).
fn root_user_flag() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0).then_some("--user=root")
}

fn init_mysql(l: &Layout, name: &str) -> Result<(), ClusterError> {
    let bins = bins::mysql()?;
    // A private tmpdir: parallel bootstraps sharing /tmp trip over each
    // other's temporary tables.
    let tmp = l.dir.join("tmp");
    mkdir(&tmp, None, 0o755)?;
    let mut cmd = Command::new(&bins.install_db);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", l.data.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .args(root_user_flag())
        .current_dir(&l.dir);
    run_logged(cmd, &l.dir.join("install-db.log"), name, "mariadb-install-db")
}

fn mysql_command(l: &Layout, port: u16) -> Result<Command, ClusterError> {
    let bins = bins::mysql()?;
    let tmp = l.dir.join("tmp");
    let mut cmd = Command::new(&bins.server);
    cmd.arg("--no-defaults")
        .args(root_user_flag())
        .arg(format!("--datadir={}", l.data.display()))
        .arg(format!("--socket={}", mysql_socket(l).display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--pid-file={}", l.dir.join("mariadbd.pid").display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .args([
            "--innodb-flush-log-at-trx-commit=0",
            "--skip-innodb-doublewrite",
            "--skip-log-bin",
            "--sync-binlog=0",
            "--innodb-buffer-pool-size=32M",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=300",
            "--performance-schema=OFF",
        ]);
    Ok(cmd)
}

/// The superuser client over the server's own unix socket.
fn admin_command(kind: BackendKind, l: &Layout, port: u16) -> Result<Command, ClusterError> {
    let mut cmd = Command::new(bins::client(kind)?);
    match kind {
        BackendKind::Postgres => {
            cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&l.sock)
                .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
                .env("PGCONNECT_TIMEOUT", "5");
            for var in ["PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGSSLMODE"] {
                cmd.env_remove(var);
            }
        }
        BackendKind::Mysql => {
            cmd.arg("--no-defaults")
                .arg(format!("--socket={}", mysql_socket(l).display()))
                .args(["-u", "root", "-N", "-B", "--connect-timeout=5"])
                .env_remove("MYSQL_PWD")
                .env_remove("MYSQL_HOST");
        }
    }
    Ok(cmd)
}

/// The client flag that runs one SQL string: `psql -c` / `mariadb -e`.
fn sql_flag(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Postgres => "-c",
        BackendKind::Mysql => "-e",
    }
}

enum Wait {
    /// The server exited because its port was taken meanwhile: retry.
    PortTaken,
    Failed(ClusterError),
}

/// Waits until the server accepts TCP connections and its superuser can log
/// in over the unix socket.
fn wait_ready(sp: &mut ServerProc, l: &Layout, port: u16, log_start: u64) -> Result<(), Wait> {
    let deadline = Instant::now() + startup_timeout();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut last_error = String::new();
    loop {
        if let Ok(Some(status)) = sp.child.try_wait() {
            let mut log_now = String::new();
            if let Ok(mut f) = File::open(&l.log) {
                let _ = f.seek(SeekFrom::Start(log_start));
                let _ = f.read_to_string(&mut log_now);
            }
            if log_now.contains("Address already in use") {
                return Err(Wait::PortTaken);
            }
            return Err(Wait::Failed(ClusterError::ExitedEarly {
                server: sp.name.clone(),
                status: status.to_string(),
                log: l.log.clone(),
                tail: log_tail(&l.log, 30),
            }));
        }
        // TCP first (cheap); the socket login proves it is our server.
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            let mut probe = admin_command(sp.kind, l, port).map_err(Wait::Failed)?;
            probe.args([sql_flag(sp.kind), "SELECT 1"]);
            let (ok, output) = admin(probe);
            if ok {
                return Ok(());
            }
            last_error = output;
        }
        if Instant::now() > deadline {
            return Err(Wait::Failed(ClusterError::NotReady {
                server: sp.name.clone(),
                secs: startup_timeout().as_secs(),
                reason: if last_error.is_empty() {
                    format!("nothing accepted connections on {addr}")
                } else {
                    last_error.trim().to_string()
                },
                log: l.log.clone(),
                tail: log_tail(&l.log, 30),
            }));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates the `shardgate` login (password `shardgate`) and database.
fn create_user_and_database(kind: BackendKind, l: &Layout, port: u16, name: &str) -> Result<(), ClusterError> {
    let mut cmd = admin_command(kind, l, port)?;
    match kind {
        BackendKind::Postgres => {
            // Separate -c: CREATE DATABASE cannot run inside a transaction.
            // Superuser, like MariaDB's ALL PRIVILEGES ON *.*, so tests can
            // do anything a test needs (terminate backends, collations, ...).
            cmd.args([
                "-c",
                &format!("CREATE ROLE {USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"),
                "-c",
                &format!("CREATE DATABASE {DATABASE} OWNER {USER}"),
            ]);
        }
        BackendKind::Mysql => {
            let mut sql = String::new();
            for host in ["%", "localhost"] {
                sql += &format!(
                    "CREATE USER '{USER}'@'{host}' IDENTIFIED VIA mysql_native_password \
                     USING PASSWORD('{PASSWORD}'); \
                     GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{host}' WITH GRANT OPTION; "
                );
            }
            sql += &format!("CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;");
            cmd.args(["-e", &sql]);
        }
    }
    let (ok, output) = admin(cmd);
    if ok {
        Ok(())
    } else {
        Err(ClusterError::CommandFailed {
            server: name.into(),
            command: "creating the shardgate user and database".into(),
            status: "failed".into(),
            output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports: HashSet<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        assert_eq!(ports.len(), 20);
    }
}
