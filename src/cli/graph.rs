//! The topology a pipeline implies, as text (`smsflow graph`) or Graphviz DOT.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::topology::{StageKind, Topology};

/// Stages with what they read and write, then the route table.
pub fn text(t: &Topology) -> String {
    let mut out = String::new();
    let p = t.pipeline();
    let _ = writeln!(
        out,
        "bus: {:?}, {} partitions per topic",
        p.kafka.mode, p.topics.partitions
    );
    let _ = writeln!(out, "stages:");
    let chained = t.chained_names();
    for s in t.stages() {
        let note = match &s.kind {
            StageKind::App { builtin: false, .. } => " (registered in code)".to_owned(),
            StageKind::RouterIn if !chained.is_empty() => {
                format!(" (runs chained: {})", chained.join(", "))
            }
            _ => String::new(),
        };
        let _ = writeln!(out, "  {}{note}", s.name);
        let _ = writeln!(out, "    reads:  {}", s.reads.join(", "));
        let _ = writeln!(out, "    writes: {}", s.writes.join(", "));
    }
    let external: Vec<&str> = p
        .apps
        .iter()
        .filter(|a| {
            !chained.contains(&a.name())
                && !t
                    .stages()
                    .iter()
                    .any(|s| s.name == format!("app:{}", a.name()))
        })
        .map(|a| a.name())
        .collect();
    if !external.is_empty() {
        let _ = writeln!(
            out,
            "external apps (consume their topic outside smsflow): {}",
            external.join(", ")
        );
    }
    let _ = writeln!(out, "routes (first match wins):");
    for (i, r) in p.routes.iter().enumerate() {
        let mut cond = Vec::new();
        for (k, v) in [
            ("keyword", &r.keyword),
            ("pattern", &r.pattern),
            ("exact", &r.exact),
            ("backend", &r.backend),
            ("prefix", &r.prefix),
        ] {
            if let Some(v) = v {
                cond.push(format!("{k} {v:?}"));
            }
        }
        let cond = if cond.is_empty() {
            "the app's own trigger".to_owned()
        } else {
            cond.join(" and ")
        };
        let _ = writeln!(out, "  {i}. {cond} -> {}", r.app);
    }
    match &p.default_app {
        Some(d) => {
            let _ = writeln!(out, "  otherwise -> {d}");
        }
        None => {
            let _ = writeln!(out, "  otherwise -> dropped (no default app)");
        }
    }
    if !p.taps.is_empty() {
        let _ = writeln!(out, "taps (see every message): {}", p.taps.join(", "));
    }
    out
}

/// Graphviz: stages are boxes, topics are ellipses, edges are reads and writes.
pub fn dot(t: &Topology) -> String {
    let mut out =
        String::from("digraph smsflow {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    let mut topics = BTreeSet::new();
    for s in t.stages() {
        let _ = writeln!(
            out,
            "  \"{}\" [shape=box, style=filled, fillcolor=\"#dcf1ff\"];",
            s.name
        );
        for r in &s.reads {
            topics.insert(r.clone());
            let _ = writeln!(out, "  \"{r}\" -> \"{}\";", s.name);
        }
        for w in &s.writes {
            topics.insert(w.clone());
            let _ = writeln!(out, "  \"{}\" -> \"{w}\";", s.name);
        }
    }
    for topic in topics {
        let _ = writeln!(out, "  \"{topic}\" [shape=ellipse];");
    }
    out.push_str("}\n");
    out
}
