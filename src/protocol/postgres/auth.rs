//! Client authentication: SCRAM-SHA-256 (RFC 5802 / 7677, without channel
//! binding), md5 and trust, against shardgate's own users.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// A user's SCRAM verifier, derived once from the configured password.
#[derive(Clone)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramVerifier(…)")
    }
}

impl ScramVerifier {
    /// Parses `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, the form
    /// PostgreSQL stores and `postgres_protocol::password::scram_sha_256` makes.
    pub fn from_password(password: &str) -> Option<ScramVerifier> {
        let v = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let rest = v.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iter, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(ScramVerifier {
            iterations: iter.parse().ok()?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?,
            server_key: B64.decode(server).ok()?,
        })
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Why an authentication exchange failed (the client sees only
/// "password authentication failed").
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("wrong password")]
    WrongPassword,
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    verifier: ScramVerifier,
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

impl ScramServer {
    /// Reads the client-first message; returns the exchange and the
    /// server-first message to send.
    pub fn start(verifier: ScramVerifier, client_first: &[u8]) -> Result<(ScramServer, String), AuthError> {
        let msg = std::str::from_utf8(client_first).map_err(|_| AuthError::Malformed("not UTF-8"))?;
        // gs2 header: "n,," or "y,," (no channel binding); "p=…" asks for it.
        let (cbind, rest) = msg.split_once(',').ok_or(AuthError::Malformed("no gs2 header"))?;
        match cbind {
            "n" | "y" => {}
            _ => return Err(AuthError::ChannelBinding),
        }
        let (_authzid, bare) = rest.split_once(',').ok_or(AuthError::Malformed("no gs2 header"))?;
        let client_nonce =
            bare.split(',').find_map(|a| a.strip_prefix("r=")).ok_or(AuthError::Malformed("no client nonce"))?;
        let mut raw = [0u8; 18];
        rand::fill(&mut raw);
        let nonce = format!("{client_nonce}{}", B64.encode(raw));
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&verifier.salt), verifier.iterations);
        Ok((
            ScramServer { verifier, nonce, client_first_bare: bare.to_string(), server_first: server_first.clone() },
            server_first,
        ))
    }

    /// Checks the client-final message; returns the server-final message.
    pub fn finish(self, client_final: &[u8]) -> Result<String, AuthError> {
        let msg = std::str::from_utf8(client_final).map_err(|_| AuthError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(AuthError::Malformed("no proof"))?;
        let nonce =
            without_proof.split(',').find_map(|a| a.strip_prefix("r=")).ok_or(AuthError::Malformed("no nonce"))?;
        if nonce != self.nonce {
            return Err(AuthError::Malformed("nonce mismatch"));
        }
        let cbind = without_proof.split(',').find_map(|a| a.strip_prefix("c=")).ok_or(AuthError::Malformed("no c="))?;
        if cbind != "biws" && cbind != "eSws" {
            return Err(AuthError::ChannelBinding);
        }
        let proof = B64.decode(proof).map_err(|_| AuthError::Malformed("proof is not base64"))?;
        let auth_message = format!("{},{},{}", self.client_first_bare, self.server_first, without_proof);
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(AuthError::WrongPassword);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        let stored = Sha256::digest(&client_key);
        // Constant-time comparison.
        let diff = stored.iter().zip(&self.verifier.stored_key).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 || stored.len() != self.verifier.stored_key.len() {
            return Err(AuthError::WrongPassword);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// Checks an md5 password response (`md5` + md5(md5(password + user) + salt)).
pub fn md5_ok(user: &str, password: &str, salt: [u8; 4], response: &str) -> bool {
    let want = postgres_protocol::authentication::md5_hash(user.as_bytes(), password.as_bytes(), salt);
    want.len() == response.len() && want.bytes().zip(response.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    #[test]
    fn scram_exchange_with_a_real_client_implementation() {
        let verifier = ScramVerifier::from_password("s3cret").unwrap();
        let mut client = ScramSha256::new(b"s3cret", ChannelBinding::unsupported());
        let (server, server_first) = ScramServer::start(verifier.clone(), client.message()).unwrap();
        client.update(server_first.as_bytes()).unwrap();
        let server_final = server.finish(client.message()).unwrap();
        client.finish(server_final.as_bytes()).unwrap();

        let mut wrong = ScramSha256::new(b"nope", ChannelBinding::unsupported());
        let (server, server_first) = ScramServer::start(verifier, wrong.message()).unwrap();
        wrong.update(server_first.as_bytes()).unwrap();
        assert!(matches!(server.finish(wrong.message()), Err(AuthError::WrongPassword)));
    }

    #[test]
    fn md5_check() {
        let salt = [1, 2, 3, 4];
        let resp = postgres_protocol::authentication::md5_hash(b"u", b"pw", salt);
        assert!(md5_ok("u", "pw", salt, &resp));
        assert!(!md5_ok("u", "px", salt, &resp));
    }
}
