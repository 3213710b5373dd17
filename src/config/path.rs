//! Where a value stands in a pipeline: a path from the root, printed like
//! `routes[2].pattern`, and which keys hold secrets never to be printed.

use std::fmt;

/// One step into a tree: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A path from the root, printed like `routes[2].pattern`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Step>);

impl Path {
    pub fn key(&self, key: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Step::Key(key.to_owned()));
        p
    }

    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Step::Index(i));
        p
    }
}

/// Keys whose values are secrets, besides those [`is_secret_key`]'s name
/// rule catches (librdkafka's and the providers' names).
const SECRET_KEYS: [&str; 9] = [
    "sasl.jaas.config",
    "sasl.oauthbearer.config",
    "ssl.key.pem",
    "ssl_key_pem",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "basic_auth",
    "sid_token",
    // A SIM's PIN (the modem backend).
    "pin",
];

/// Words that make a key name a secret's, whatever the case and separators:
/// `auth_token`, `sasl.password`, `apiKey`, `webhook_secret`, ...
const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
    "passphrase",
];

/// Whether the value at mapping key `key` is a secret, never to be printed.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if SECRET_KEYS.contains(&key.as_str()) {
        return true;
    }
    let squashed: String = key.chars().filter(char::is_ascii_alphanumeric).collect();
    SECRET_WORDS.iter().any(|w| squashed.contains(w))
}

impl Path {
    /// Whether this path goes through a secret key (see [`is_secret_key`]).
    pub fn is_secret(&self) -> bool {
        self.0
            .iter()
            .any(|step| matches!(step, Step::Key(k) if is_secret_key(k)))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}
