//! Rules about who may reach what, checked when a pipeline is validated and
//! again when it starts: the admin listener off loopback needs credentials,
//! the tester off loopback needs consent, password hashes are argon2.

use argon2::PasswordHash;

use super::backends::Backend;
use super::types::{Http, Pipeline};

/// Why a pipeline's admin listener must not start as it is, if it must not:
/// reachable from other machines with nobody to authenticate.
pub fn admin_exposure(http: &Http) -> Option<String> {
    (!http.admin_on_loopback() && !http.admin.has_auth()).then(|| {
        format!(
            "the admin listener {} is not on loopback and has no authentication: \
             add `tokens` or `users` to http.admin, or listen on 127.0.0.1",
            http.admin_listen()
        )
    })
}

/// Why `p` must not start: a tester backend on an admin listener other
/// machines can reach lets anyone with admin access inject messages as any
/// phone number, so that takes `http.admin.allow_remote_tester: true`.
pub fn remote_refusal(p: &Pipeline) -> Option<String> {
    let admin = &p.http.admin;
    let tester = p.backends.iter().find_map(|b| match b {
        Backend::Tester { name, .. } => Some(name),
        _ => None,
    })?;
    (!p.http.admin_on_loopback() && !admin.allow_remote_tester).then(|| {
        format!(
            "the tester backend {tester:?} would be served on {}, which is not loopback: \
             set http.admin.allow_remote_tester: true to allow it, or remove the tester",
            p.http.admin_listen()
        )
    })
}

/// Why `hash` is not an argon2 password hash (never quoting it).
pub fn check_hash(hash: &str) -> Result<(), String> {
    match PasswordHash::new(hash) {
        Ok(h) if h.algorithm.as_str().starts_with("argon2") => Ok(()),
        Ok(h) => Err(format!(
            "uses {}: expected an argon2 hash ($argon2id$...)",
            h.algorithm
        )),
        Err(_) => Err(
            "is not an argon2 hash in PHC form ($argon2id$v=19$m=...,t=...,p=...$salt$hash)".into(),
        ),
    }
}
