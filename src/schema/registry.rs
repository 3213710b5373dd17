//! Which schema each topic of a pipeline carries, as a schema registry
//! sees it (subject `<topic>-value`, Confluent's TopicNameStrategy), and
//! registering them in an external Confluent-compatible registry.
//!
//! Without an external registry, the admin listener serves these subjects
//! read-only with smsflow's own ids (`crate::web`'s registry routes).

use std::time::Duration;

use serde::Deserialize;

use super::framing::{by_file, learn_id, Known};
use crate::config::{files, Pipeline, SchemaRegistry};

/// A topic and the schema of its records' values.
#[derive(Debug, Clone)]
pub struct Subject {
    pub topic: String,
    pub known: &'static Known,
}

impl Subject {
    /// The registry's name for it: `<topic>-value`.
    pub fn name(&self) -> String {
        format!("{}-value", self.topic)
    }
}

/// Every Avro topic of `p` with its schema, in a stable order. Topics that
/// hold no Avro (opt-outs, poll answers, sent-logs: JSON; the dead-letter
/// topic: copies of anything) are left out.
pub fn subjects(p: &Pipeline) -> Vec<Subject> {
    let t = &p.topics;
    let mut out: Vec<(String, &str)> = vec![
        (t.inbound.clone(), "inbound_message.avsc"),
        (t.outbound.clone(), "outbound_message.avsc"),
        (t.events.clone(), "delivery_event.avsc"),
        (t.contacts.clone(), "contact.avsc"),
        (t.log.clone(), "log_entry.avsc"),
        (t.stats.clone(), "stats.avsc"),
    ];
    out.extend(
        p.apps
            .iter()
            .map(|a| (t.app(a.name()), "routed_message.avsc")),
    );
    for b in &p.backends {
        out.push((t.send(b.name()), "outbound_message.avsc"));
        if p.campaigns.is_some() {
            out.push((t.bulk(b.name()), "outbound_message.avsc"));
        }
    }
    if p.campaigns.is_some() {
        out.push((t.campaigns.clone(), "campaign.avsc"));
        out.push((t.audience.clone(), "audience_chunk.avsc"));
    }
    out.into_iter()
        .filter_map(|(topic, file)| {
            Some(Subject {
                topic,
                known: by_file(file)?,
            })
        })
        .collect()
}

/// Why the external registry refused or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("schema registry {url} refused subject {subject} ({status}): {body}")]
    Refused {
        url: String,
        subject: String,
        status: u16,
        body: String,
    },
    #[error("schema registry: {0}")]
    Config(String),
}

#[derive(Deserialize)]
struct Registered {
    id: u32,
}

/// Register every subject of `p` in `registry` (POST
/// `/subjects/<topic>-value/versions`; registering a schema the subject
/// already has returns its existing id) and use the ids it gives.
pub async fn register(p: &Pipeline, registry: &SchemaRegistry) -> Result<usize, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10));
    if let Some(path) = &registry.ca_file {
        let certs =
            files::ca_certificates(path).map_err(|e| RegistryError::Config(e.to_string()))?;
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder
        .build()
        .map_err(|e| RegistryError::Config(e.to_string()))?;
    let base = registry.url.trim_end_matches('/');
    let subjects = subjects(p);
    for s in &subjects {
        let url = format!("{base}/subjects/{}/versions", s.name());
        let mut request = client
            .post(&url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": s.known.json }));
        if let Some(user) = &registry.username {
            request = request.basic_auth(user, registry.password.as_deref());
        }
        let unreachable = |e: reqwest::Error| RegistryError::Unreachable {
            url: base.to_owned(),
            reason: e.to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(RegistryError::Refused {
                url: base.to_owned(),
                subject: s.name(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            });
        }
        let Registered { id } =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Refused {
                url: base.to_owned(),
                subject: s.name(),
                status: status.as_u16(),
                body: format!(
                    "not a registration answer ({e}): {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            })?;
        learn_id(s.known, id);
        tracing::info!(subject = %s.name(), id, "schema registered");
    }
    Ok(subjects.len())
}
