//! The Docker provider (cargo feature `docker`, chosen with
//! `SHARDGATE_TEST_BACKEND=docker`): the same [`Server`] shape from
//! `postgres:15` / `mariadb:10.11` containers, through testcontainers, with
//! the same credentials and collation settings as the local provider.

use std::time::{Duration, Instant};

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt, TestcontainersError};

use super::{ClusterError, DATABASE, PASSWORD, Server, USER, bins, parallel};
use crate::backend::BackendKind;

/// Running containers; dropping one stops and removes it.
pub(crate) struct Containers {
    containers: Vec<(String, Container<GenericImage>)>,
}

impl Containers {
    /// Stops one container (simulates a dead shard).
    pub(crate) fn kill(&mut self, name: &str) -> Result<bool, ClusterError> {
        match self.containers.iter().find(|(n, _)| n == name) {
            Some((_, c)) => c.stop_with_timeout(Some(0)).map(|_| true).map_err(docker_err),
            None => Ok(false),
        }
    }
}

fn docker_err(e: TestcontainersError) -> ClusterError {
    ClusterError::Docker(e.to_string())
}

pub(crate) fn start(kind: BackendKind, names: &[String]) -> Result<(Vec<Server>, Containers), ClusterError> {
    let mut servers = Vec::new();
    let mut containers = Vec::new();
    let mut first_err = None;
    for result in parallel(names, |name| start_one(kind, name)) {
        match result {
            Ok((server, container)) => {
                containers.push((server.name.clone(), container));
                servers.push(server);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        // The started containers are removed as `containers` drops.
        Some(e) => Err(e),
        None => Ok((servers, Containers { containers })),
    }
}

fn start_one(kind: BackendKind, name: &str) -> Result<(Server, Container<GenericImage>), ClusterError> {
    let (container, internal_port) = match kind {
        BackendKind::Postgres => {
            let request = GenericImage::new("postgres", "15")
                .with_exposed_port(5432.tcp())
                .with_wait_for(WaitFor::message_on_stdout("PostgreSQL init process complete; ready for start up."))
                .with_wait_for(WaitFor::message_on_stderr("database system is ready to accept connections"))
                .with_env_var("POSTGRES_USER", USER)
                .with_env_var("POSTGRES_PASSWORD", PASSWORD)
                .with_env_var("POSTGRES_DB", DATABASE)
                .with_env_var("POSTGRES_INITDB_ARGS", "--locale-provider=icu --icu-locale=en-US -E UTF8 --locale=C")
                .with_cmd([
                    "postgres",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "shared_buffers=16MB",
                    "-c",
                    "max_connections=200",
                ]);
            (request.start().map_err(docker_err)?, 5432)
        }
        BackendKind::Mysql => {
            let grants = format!(
                "GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;\n\
                 CREATE USER IF NOT EXISTS '{USER}'@'localhost' \
                 IDENTIFIED VIA mysql_native_password USING PASSWORD('{PASSWORD}');\n\
                 GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'localhost' WITH GRANT OPTION;\n"
            );
            let request = GenericImage::new("mariadb", "10.11")
                .with_exposed_port(3306.tcp())
                .with_wait_for(WaitFor::message_on_stderr("mariadbd: ready for connections."))
                .with_wait_for(WaitFor::message_on_stderr("port: 3306"))
                .with_env_var("MARIADB_ROOT_PASSWORD", PASSWORD)
                .with_env_var("MARIADB_USER", USER)
                .with_env_var("MARIADB_PASSWORD", PASSWORD)
                .with_env_var("MARIADB_DATABASE", DATABASE)
                .with_copy_to("/docker-entrypoint-initdb.d/10-shardgate-grants.sql", grants.into_bytes())
                .with_cmd([
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_general_ci",
                    "--innodb-flush-log-at-trx-commit=0",
                    "--skip-log-bin",
                    "--sync-binlog=0",
                    "--innodb-buffer-pool-size=32M",
                    "--skip-name-resolve",
                    "--max-connections=300",
                ]);
            (request.start().map_err(docker_err)?, 3306)
        }
    };
    let server = Server {
        name: name.to_string(),
        kind,
        host: container.get_host().map_err(docker_err)?.to_string(),
        port: container.get_host_port_ipv4(internal_port.tcp()).map_err(docker_err)?,
        user: USER.into(),
        password: PASSWORD.into(),
        database: DATABASE.into(),
        pid: None,
    };
    wait_for_login(&server)?;
    Ok((server, container))
}

/// The images restart their server once after initialisation, and Docker's
/// port proxy accepts TCP before the server does: log in for real (when the
/// command line client is installed) until it works.
fn wait_for_login(server: &Server) -> Result<(), ClusterError> {
    if bins::client(server.kind).is_err() {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match server.query("SELECT 1") {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}
