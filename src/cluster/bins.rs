//! Finding the server and client binaries on this machine.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::ClusterError;
use crate::backend::BackendKind;

/// PostgreSQL server binaries, all from one installation.
#[derive(Debug)]
pub(crate) struct PgBins {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

/// MariaDB server binaries.
#[derive(Debug)]
pub(crate) struct MyBins {
    pub install_db: PathBuf,
    pub server: PathBuf,
}

/// An executable file named `name` in one of the PATH directories.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// The directory of the PostgreSQL server binaries: `SHARDGATE_PG_BINDIR`,
/// else `postgres` on PATH, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn pg_bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| is_executable(&dir.join("postgres"));
    if let Some(dir) = std::env::var_os("SHARDGATE_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = which("postgres").and_then(|p| p.parent().map(Path::to_path_buf))
        && has_server(&dir)
        && is_executable(&dir.join("initdb"))
    {
        return Some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

pub(crate) fn postgres() -> Result<&'static PgBins, ClusterError> {
    static BINS: OnceLock<Option<PgBins>> = OnceLock::new();
    BINS.get_or_init(|| {
        let dir = pg_bindir()?;
        let bins = PgBins { initdb: dir.join("initdb"), postgres: dir.join("postgres") };
        (is_executable(&bins.initdb) && is_executable(&bins.postgres)).then_some(bins)
    })
    .as_ref()
    .ok_or_else(|| ClusterError::BinaryNotFound {
        what: "PostgreSQL server (postgres, initdb)".into(),
        hint: "install postgresql-15 (integration/install.sh), put its bin dir on PATH \
               or set SHARDGATE_PG_BINDIR"
            .into(),
    })
}

fn first_of(names: &[&str], dirs: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|n| which(n)).or_else(|| {
        dirs.iter().flat_map(|d| names.iter().map(move |n| Path::new(d).join(n))).find(|p| is_executable(p))
    })
}

pub(crate) fn mysql() -> Result<&'static MyBins, ClusterError> {
    static BINS: OnceLock<Option<MyBins>> = OnceLock::new();
    BINS.get_or_init(|| {
        Some(MyBins {
            server: first_of(&["mariadbd", "mysqld"], &["/usr/sbin", "/usr/bin"])?,
            install_db: first_of(&["mariadb-install-db", "mysql_install_db"], &["/usr/bin", "/usr/sbin"])?,
        })
    })
    .as_ref()
    .ok_or_else(|| ClusterError::BinaryNotFound {
        what: "MariaDB server (mariadbd, mariadb-install-db)".into(),
        hint: "install mariadb-server (integration/install.sh)".into(),
    })
}

/// The command line client for `kind`: `psql` or `mariadb`.
pub fn client(kind: BackendKind) -> Result<PathBuf, ClusterError> {
    static PSQL: OnceLock<Option<PathBuf>> = OnceLock::new();
    static MARIADB: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = match kind {
        BackendKind::Postgres => PSQL.get_or_init(|| {
            // Prefer the psql of the server installation over Debian's wrapper.
            pg_bindir().map(|d| d.join("psql")).filter(|p| is_executable(p)).or_else(|| which("psql"))
        }),
        BackendKind::Mysql => MARIADB.get_or_init(|| first_of(&["mariadb", "mysql"], &["/usr/bin"])),
    };
    found.clone().ok_or_else(|| ClusterError::BinaryNotFound {
        what: match kind {
            BackendKind::Postgres => "psql".into(),
            BackendKind::Mysql => "mariadb (client)".into(),
        },
        hint: "install postgresql-client / mariadb-client (integration/install.sh)".into(),
    })
}
