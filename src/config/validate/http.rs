//! `http:`: the public URL, the two listeners, who may use the admin one,
//! host names and limits.

use crate::config::node::Path;
use crate::config::types::Pipeline;

use super::rules::url_error;

/// The public URL, and the listeners: the admin one apart from the public
/// one, authenticated unless on loopback, its credentials well formed (never
/// quoted), limits above zero.
pub(super) fn check(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let http = Path::default().key("http");
    if let Some(u) = &p.http.public_url {
        if let Some(why) = url_error(u, "https://sms.example.org") {
            report(http.key("public_url"), why);
        }
    }
    let admin = http.key("admin");
    let a = &p.http.admin;
    let at = p.http.admin_listen();
    if at == p.http.listen && at.port() != 0 {
        report(
            admin.key("listen"),
            format!("{at} is also http.listen: the admin listener needs an address of its own"),
        );
    }
    if let Some(why) = crate::config::access::admin_exposure(&p.http) {
        report(admin.key("listen"), why);
    }
    if let Some(why) = crate::config::access::remote_refusal(p) {
        report(admin.key("allow_remote_tester"), why);
    }
    for (i, t) in a.tokens.iter().enumerate() {
        let n = t.expose().chars().count();
        if n < 16 || t.expose().chars().any(char::is_whitespace) {
            report(
                admin.key("tokens").index(i),
                format!("token {} has {n} characters or contains a blank: expected at least 16 characters and no blanks (give it through ${{VAR}})", i + 1),
            );
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, u) in a.users.iter().enumerate() {
        let at = admin.key("users").index(i);
        if u.name.is_empty() || u.name.contains(':') {
            report(
                at.key("name"),
                "a user name is not empty and has no `:`".into(),
            );
        } else if !names.insert(u.name.as_str()) {
            report(
                at.key("name"),
                format!("user {:?} is declared twice", u.name),
            );
        }
        if let Err(why) = crate::config::access::check_hash(u.password_hash.expose()) {
            report(
                at.key("password_hash"),
                format!("the password hash {why}; make one with `smsflow hash-password`"),
            );
        }
    }
    for (key, hosts) in [
        (http.key("hosts"), &p.http.hosts),
        (admin.key("hosts"), &a.hosts),
    ] {
        for (i, h) in hosts.iter().enumerate() {
            let ok = h.parse::<std::net::IpAddr>().is_ok()
                || (!h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')));
            if !ok {
                report(
                    key.clone().index(i),
                    format!("{h:?} is not a host name: expected a name such as sms.example.org, without scheme, port or path"),
                );
            }
        }
    }
    let limits = http.key("limits");
    let l = &p.http.limits;
    if l.max_body_bytes < 1024 {
        report(
            limits.key("max_body_bytes"),
            format!("{} bytes: expected at least 1024", l.max_body_bytes),
        );
    }
    if l.max_connections == 0 {
        report(
            limits.key("max_connections"),
            "0 connections: expected at least 1".into(),
        );
    }
    for (key, d) in [
        ("header_read_timeout", l.header_read_timeout),
        ("request_timeout", l.request_timeout),
    ] {
        if d.is_zero() {
            report(limits.key(key), "0s: expected a duration above zero".into());
        }
    }
}
