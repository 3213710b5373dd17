//! A bad `export:` section is refused, each error naming its field.

use smsflow::config::{ExportAvroCodec, ExportFormat};

fn errors(section: &str) -> String {
    let yaml = format!(
        "backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n{section}"
    );
    match smsflow::topology::load_str(&yaml, &|_| None) {
        Ok(_) => panic!("accepted:\n{section}"),
        Err(errors) => errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn a_bad_export_section_is_refused_naming_the_field() {
    for (section, field, says) in [
        ("export: {}\n", "export.dir", "`dir` is required"),
        (
            "export: {dir: /tmp/x, flush_size: 0}\n",
            "export.flush_size",
            "at least 1",
        ),
        (
            "export: {dir: /tmp/x, rotate_interval: 10ms}\n",
            "export.rotate_interval",
            "at least 1s",
        ),
        (
            "export: {dir: /tmp/x, format: csv}\n",
            "export.format",
            "parquet",
        ),
        (
            "export: {dir: /tmp/x, avro_codec: snappy}\n",
            "export.avro_codec",
            "deflate",
        ),
        (
            "export: {dir: /tmp/x, topics: [sms.events, sms.events]}\n",
            "export.topics[1]",
            "listed twice",
        ),
        (
            "export: {dir: /tmp/x, topics: ['bad topic']}\n",
            "export.topics[0]",
            "bad topic",
        ),
        ("export: {dir: /tmp/x, rotate: 5m}\n", "export", "rotate"),
    ] {
        let e = errors(section);
        assert!(e.contains(field) && e.contains(says), "{section}: {e}");
    }
}

#[test]
fn a_good_export_section_reads_with_its_defaults() {
    let yaml = "backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\nexport:\n  dir: /tmp/x\n  format: avro\n  avro_codec: deflate\n";
    let p = smsflow::topology::load_str(yaml, &|_| None).unwrap();
    let e = p.export.clone().unwrap();
    assert_eq!(
        (e.format, e.avro_codec),
        (ExportFormat::Avro, ExportAvroCodec::Deflate)
    );
    assert_eq!(e.flush_size, 100_000);
    assert_eq!(
        smsflow::export::topics(&p),
        ["sms.events", "sms.inbound", "sms.log"]
    );
    // `avro_codec: null` is the null codec (YAML's null reads as the default).
    let yaml = "backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\nexport: {dir: /tmp/x, avro_codec: null}\n";
    let p = smsflow::topology::load_str(yaml, &|_| None).unwrap();
    assert_eq!(p.export.unwrap().avro_codec, ExportAvroCodec::Null);
    // The stage is in the graph only when the section is there.
    let t = smsflow::topology::Topology::new(p_with_export()).unwrap();
    let s = t.stages().into_iter().find(|s| s.name == "export").unwrap();
    assert_eq!(s.reads, ["sms.events", "sms.inbound", "sms.log"]);
    let yaml = "backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\n";
    let t = smsflow::topology::Topology::new(smsflow::topology::load_str(yaml, &|_| None).unwrap())
        .unwrap();
    assert!(t.stages().iter().all(|s| s.name != "export"));
}

fn p_with_export() -> smsflow::config::Pipeline {
    let yaml = "backends:\n  - type: tester\nroutes:\n  - app: echo\napps:\n  - type: echo\nexport: {dir: /tmp/x}\n";
    smsflow::topology::load_str(yaml, &|_| None).unwrap()
}
