//! Every file under `pipelines/` validates, and its graph names every stage.

use smsflow::topology::Topology;

mod common;

#[test]
fn every_pipeline_file_is_valid() {
    let dir = common::root().join("pipelines");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let p = smsflow::topology::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            let t = Topology::new(p).unwrap();
            let text = smsflow::cli::graph::text(&t);
            let dot = smsflow::cli::graph::dot(&t);
            for s in t.stages() {
                assert!(text.contains(&s.name) && dot.contains(&format!("\"{}\"", s.name)));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no pipeline files found");
}
