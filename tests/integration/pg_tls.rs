//! TLS between clients and shardgate: psql with sslmode=require gets an
//! encrypted session; plain clients still connect.

use std::process::Command;
use std::sync::Arc;

use crate::support::{self, BackendKind};

#[test]
fn clients_that_ask_for_tls_get_it() {
    let cluster = support::cluster(BackendKind::Postgres, 2);
    let dir = std::env::temp_dir().join(format!("shardgate-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rules = support::proxy::rule_file(cluster, "");
    let rules = shardgate::rules::Rules::parse(&rules, "tls.toml").unwrap_or_else(|e| panic!("{e}"));
    let config: shardgate::config::Config = toml::from_str(&format!(
        "rules = \"unused\"\n[postgres]\nlisten = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n\
         [[user]]\nname = \"app\"\npassword = \"apppw\"\n",
        cert.display().to_string(),
        key.display().to_string()
    ))
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let port = rt.block_on(async {
        let proxy = shardgate::server::PgProxy::bind(Arc::new(config), rules).await.unwrap();
        let port = proxy.local_addr().unwrap().port();
        tokio::spawn(proxy.run());
        port
    });
    let psql = |sslmode: &str| {
        let out = Command::new("psql")
            .arg(format!("host=127.0.0.1 port={port} user=app password=apppw dbname=shardgate sslmode={sslmode}"))
            .args(["-X", "-c", "\\conninfo", "-c", "SELECT 40 + 2"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sslmode}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tls = psql("require");
    assert!(tls.contains("SSL connection (protocol: TLSv1."), "{tls}");
    assert!(tls.contains("42"), "{tls}");
    let plain = psql("disable");
    assert!(!plain.contains("SSL connection"), "{plain}");
    assert!(plain.contains("42"), "{plain}");
    rt.shutdown_background();
    let _ = std::fs::remove_dir_all(&dir);
}
