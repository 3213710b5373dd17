//! Contacts and their connections (RapidSMS `Contact` and `Connection`), as
//! a table over the compacted `sms.contacts` topic (key = contact id, a
//! deleted contact is a tombstone).
//!
//! Every process that needs contacts holds one [`ContactBook`]: restored
//! from the topic at start-up and kept current while running
//! ([`crate::state::table::follow`]). A change made in this process is applied here
//! at once and written to the topic; other processes apply it when they read
//! it. As in RapidSMS, a connection (backend, identity) belongs to at most
//! one contact.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use crate::bus::Produce;
use crate::message::{now_millis, Connection, ConnectionKey, ConnectionView, Contact};
use crate::schema::{self, DecodeError};
use crate::sms::numbers;
use crate::state::table::next_version;

/// RapidSMS's `Contact.name` max length.
pub const MAX_NAME: usize = 100;

/// Why a contact cannot be saved: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ContactError {
    /// `name`, `language`, `backend`, `identity` or `groups`.
    pub field: &'static str,
    pub message: String,
}

impl ContactError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// The contacts a process knows.
pub struct ContactBook {
    topic: Arc<str>,
    backends: HashSet<String>,
    inner: RwLock<Book>,
}

#[derive(Default)]
struct Book {
    /// Shared, so that the router takes a contact without copying it.
    by_id: HashMap<String, Arc<Contact>>,
    /// Connection → the id of the contact it belongs to.
    owner: HashMap<Connection, String>,
    /// Deleted ids: a version of them read back later is not a contact again.
    deleted: HashSet<String>,
}

impl Book {
    fn remove(&mut self, id: &str) -> Option<Arc<Contact>> {
        let old = self.by_id.remove(id)?;
        for c in &old.connections {
            if self.owner.get(c).is_some_and(|o| o == id) {
                self.owner.remove(c);
            }
        }
        Some(old)
    }

    /// Keep `contact` unless this book has a newer version of it, or deleted it.
    fn insert(&mut self, contact: Contact) {
        let newer = self
            .by_id
            .get(&contact.id)
            .is_some_and(|c| c.modified_at > contact.modified_at);
        if newer || self.deleted.contains(&contact.id) {
            return;
        }
        self.remove(&contact.id);
        for c in &contact.connections {
            self.owner.insert(c.clone(), contact.id.clone());
        }
        self.by_id.insert(contact.id.clone(), Arc::new(contact));
    }
}

impl ContactBook {
    /// An empty book for `topic`, for a pipeline with these backends.
    pub fn new(topic: &str, backends: impl IntoIterator<Item = String>) -> Arc<Self> {
        Arc::new(Self {
            topic: Arc::from(topic),
            backends: backends.into_iter().collect(),
            inner: RwLock::default(),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Book> {
        // Nothing panics while holding it; a poisoned lock still holds good data.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Book> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The contact `connection` belongs to.
    pub fn by_connection(&self, connection: &Connection) -> Option<Contact> {
        self.by_view(connection.view()).map(Arc::unwrap_or_clone)
    }

    /// The contact a borrowed connection belongs to, shared: the router's
    /// lookup, once per message.
    pub fn by_view(&self, connection: ConnectionView) -> Option<Arc<Contact>> {
        let book = self.read();
        let id = book.owner.get(&connection as &dyn ConnectionKey)?;
        book.by_id.get(id).cloned()
    }

    pub fn get(&self, id: &str) -> Option<Contact> {
        self.read().by_id.get(id).map(|c| Contact::clone(c))
    }

    /// Every contact, by name (then id).
    pub fn list(&self) -> Vec<Contact> {
        let mut all: Vec<Contact> = self
            .read()
            .by_id
            .values()
            .map(|c| Contact::clone(c))
            .collect();
        all.sort_by(|a, b| (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id)));
        all
    }

    /// The contacts in `group`, by name.
    pub fn in_group(&self, group: &str) -> Vec<Contact> {
        let mut found = self.list();
        found.retain(|c| c.groups.iter().any(|g| g == group));
        found
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Apply a record of the topic: a contact, or a tombstone (empty payload).
    pub fn apply(&self, key: &[u8], payload: &[u8]) -> Result<(), DecodeError> {
        if payload.is_empty() {
            if let Ok(id) = std::str::from_utf8(key) {
                let mut book = self.write();
                book.remove(id);
                book.deleted.insert(id.to_owned());
            }
            return Ok(());
        }
        let contact = schema::contact().decode(payload)?;
        self.write().insert(contact);
        Ok(())
    }

    /// A new contact (not saved yet): a fresh id, created now.
    pub fn new_contact(name: &str, connections: Vec<Connection>) -> Contact {
        let now = now_millis();
        Contact {
            id: crate::message::new_id(),
            name: name.trim().to_owned(),
            language: String::new(),
            connections,
            groups: Vec::new(),
            created_at: now,
            modified_at: now,
        }
    }

    /// Check a contact as a user gave it: name, backends, identities
    /// (normalised), groups. Returns it cleaned up.
    pub fn check(&self, mut contact: Contact) -> Result<Contact, ContactError> {
        contact.name = contact.name.trim().to_owned();
        if contact.name.chars().count() > MAX_NAME {
            return Err(ContactError::new(
                "name",
                format!("is longer than {MAX_NAME} characters"),
            ));
        }
        contact.language = contact.language.trim().to_owned();
        let mut seen = HashSet::new();
        for c in &mut contact.connections {
            c.backend = c.backend.trim().to_owned();
            if !self.backends.contains(&c.backend) {
                let mut known: Vec<&str> = self.backends.iter().map(String::as_str).collect();
                known.sort();
                return Err(ContactError::new(
                    "backend",
                    format!(
                        "no backend {:?} in this pipeline (its backends: {})",
                        c.backend,
                        known.join(", ")
                    ),
                ));
            }
            c.identity = numbers::normalize(&c.identity, None)
                .map_err(|e| ContactError::new("identity", e.to_string()))?;
            if !seen.insert(c.clone()) {
                return Err(ContactError::new("identity", format!("{c} is given twice")));
            }
        }
        for g in &mut contact.groups {
            *g = g.trim().to_owned();
        }
        contact.groups.retain(|g| !g.is_empty());
        contact.groups.sort();
        contact.groups.dedup();
        Ok(contact)
    }

    /// Save `contact` (checked with [`ContactBook::check`] first): applied
    /// here at once; returns the records to write. A connection it takes
    /// from another contact is removed from that one, which is saved too.
    pub fn save(&self, contact: Contact) -> Result<Vec<Produce>, ContactError> {
        let mut contact = self.check(contact)?;
        let mut book = self.write();
        contact.modified_at = next_version(book.by_id.get(&contact.id).map(|c| c.modified_at));
        let mut changed = Vec::new();
        let mut losers: Vec<String> = contact
            .connections
            .iter()
            .filter_map(|c| book.owner.get(c))
            .filter(|owner| **owner != contact.id)
            .cloned()
            .collect();
        losers.sort();
        losers.dedup();
        for id in losers {
            if let Some(mut other) = book.by_id.get(&id).map(|c| Contact::clone(c)) {
                other
                    .connections
                    .retain(|c| !contact.connections.contains(c));
                other.modified_at = next_version(Some(other.modified_at));
                changed.push(other);
            }
        }
        changed.push(contact);
        let mut records = Vec::with_capacity(changed.len());
        for c in changed {
            let payload = schema::contact()
                .encode(&c)
                .map_err(|e| ContactError::new("name", format!("cannot be stored: {e}")))?;
            records.push(Produce::new(
                self.topic.clone(),
                Bytes::from(c.id.clone()),
                payload,
            ));
            book.insert(c);
        }
        Ok(records)
    }

    /// Delete contact `id`: the tombstone to write, or `None` if unknown.
    pub fn delete(&self, id: &str) -> Option<Produce> {
        let mut book = self.write();
        book.remove(id)?;
        book.deleted.insert(id.to_owned());
        Some(Produce::new(
            self.topic.clone(),
            Bytes::from(id.to_owned()),
            Bytes::new(),
        ))
    }
}

/// What a CSV import did: the contacts added or renamed, and each bad line.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Import {
    pub added: usize,
    pub updated: usize,
    /// (line number, reason), in file order.
    pub errors: Vec<(usize, String)>,
}

impl ContactBook {
    /// Import `name, backend, identity` lines (RapidSMS's bulk upload; blanks
    /// after commas are skipped, quoted fields may hold commas). Good lines
    /// are imported, each bad one is reported with its number and reason. A
    /// number that already has a contact renames it. Returns the report and
    /// the records to write.
    pub fn import_csv(&self, text: &str) -> (Import, Vec<Produce>) {
        // Browsers send a textarea's lines as CRLF, and Windows writes CSV
        // files so; the csv crate's line positions count those wrong (every
        // bad line would be line 1).
        let text = text.replace("\r\n", "\n");
        let mut report = Import::default();
        let mut records = Vec::new();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        for (i, row) in reader.records().enumerate() {
            let line = i + 1;
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line() as usize);
                    report.errors.push((line, format!("cannot be read: {e}")));
                    continue;
                }
            };
            let line = row.position().map_or(line, |p| p.line() as usize);
            if row.iter().all(str::is_empty) {
                continue;
            }
            let [name, backend, identity] = match row.iter().collect::<Vec<_>>()[..] {
                [n, b, i] => [n, b, i],
                ref other => {
                    report.errors.push((
                        line,
                        format!(
                            "expected 3 fields (name, backend, identity), found {}",
                            other.len()
                        ),
                    ));
                    continue;
                }
            };
            let connection = Connection::new(backend, identity);
            let known = self
                .check(Self::new_contact(name, vec![connection.clone()]))
                .ok()
                .and_then(|c| self.by_connection(&c.connections[0]));
            let contact = match known.clone() {
                Some(mut c) => {
                    c.name = name.to_owned();
                    c
                }
                None => Self::new_contact(name, vec![connection]),
            };
            if contact.name.is_empty() {
                report.errors.push((line, "name: is empty".into()));
                continue;
            }
            match self.save(contact) {
                Ok(r) => {
                    records.extend(r);
                    match known {
                        Some(_) => report.updated += 1,
                        None => report.added += 1,
                    }
                }
                Err(e) => report.errors.push((line, e.to_string())),
            }
        }
        if report.added + report.updated == 0 && report.errors.is_empty() {
            report
                .errors
                .push((0, "no contacts found in the file".into()));
        }
        (report, records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> Arc<ContactBook> {
        ContactBook::new("sms.contacts", ["tester".to_owned()])
    }

    #[test]
    fn a_connection_belongs_to_one_contact() {
        let b = book();
        let phone = Connection::new("tester", "+15550001");
        let ada = ContactBook::new_contact("Ada", vec![phone.clone()]);
        b.save(ada.clone()).unwrap();
        assert_eq!(b.by_connection(&phone).unwrap().name, "Ada");

        // Grace takes the phone: Ada is saved without it.
        let grace = ContactBook::new_contact("Grace", vec![phone.clone()]);
        let records = b.save(grace).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(b.by_connection(&phone).unwrap().name, "Grace");
        assert!(b.get(&ada.id).unwrap().connections.is_empty());

        // Another process reading the same records ends up the same.
        let other = book();
        for r in &records {
            other.apply(&r.key, &r.payload).unwrap();
        }
        assert_eq!(other.by_connection(&phone).unwrap().name, "Grace");

        // A process reads its own writes back later: an older one read
        // after a newer one does not undo it, nor revive a deleted contact.
        let mut renamed = b.by_connection(&phone).unwrap();
        renamed.name = "Grace Hopper".into();
        let newer = b.save(renamed).unwrap();
        for r in records.iter().chain(&newer) {
            b.apply(&r.key, &r.payload).unwrap();
        }
        b.apply(&records[1].key, &records[1].payload).unwrap();
        assert_eq!(b.by_connection(&phone).unwrap().name, "Grace Hopper");
        let tombstone = b.delete(&ada.id).unwrap();
        other.apply(&tombstone.key, &tombstone.payload).unwrap();
        assert!(other.get(&ada.id).is_none());
        b.apply(&records[0].key, &records[0].payload).unwrap();
        assert!(
            b.get(&ada.id).is_none(),
            "a deleted contact read back stays deleted"
        );
        assert_eq!(other.len(), 1);
    }

    #[test]
    fn bad_contacts_name_the_field() {
        let b = book();
        let e = b
            .save(ContactBook::new_contact(
                "A",
                vec![Connection::new("kannel", "+1555")],
            ))
            .unwrap_err();
        assert_eq!(e.field, "backend");
        let e = b
            .save(ContactBook::new_contact(
                "A",
                vec![Connection::new("tester", "12ab")],
            ))
            .unwrap_err();
        assert_eq!(e.field, "identity");
        let e = b
            .save(ContactBook::new_contact(&"x".repeat(101), vec![]))
            .unwrap_err();
        assert_eq!(e.field, "name");
        assert!(b.apply(b"k", b"not avro").is_err());
    }

    #[test]
    fn csv_import_reports_each_bad_line_and_keeps_the_good_ones() {
        let b = book();
        let csv = "Ada, tester, +15550001\n\
                   just a name\n\
                   Bob, kannel, +15550002\n\
                   \"Smith, Carol\", tester, 555-0003x\n\
                   \"Smith, Carol\", tester, +1 555 0003\n\
                   Ada Lovelace, tester, +15550001\n";
        let (report, records) = b.import_csv(csv);
        assert_eq!(report.added, 2);
        assert_eq!(report.updated, 1);
        let lines: Vec<usize> = report.errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4], "{:?}", report.errors);
        assert!(report.errors[0].1.contains("expected 3 fields"));
        assert!(report.errors[1].1.contains("backend"));
        assert!(report.errors[2].1.contains("identity"));
        assert_eq!(records.len(), 3);
        let carol = b
            .by_connection(&Connection::new("tester", "+15550003"))
            .unwrap();
        assert_eq!(carol.name, "Smith, Carol");
        assert_eq!(b.len(), 2);
        let (crlf, _) = b.import_csv("Dan, tester, +15550009\r\nno\r\nEve, tester, x\r\n");
        let lines: Vec<usize> = crlf.errors.iter().map(|(l, _)| *l).collect();
        assert_eq!((crlf.added, lines), (1, vec![2, 3]));
        let (empty, _) = b.import_csv("\n\n");
        assert_eq!(
            empty.errors,
            vec![(0, "no contacts found in the file".to_string())]
        );
    }
}
