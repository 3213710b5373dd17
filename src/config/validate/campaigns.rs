//! `campaigns:`: a region and a zone that exist, prices of backends the
//! pipeline has, sizes that let something through.

use crate::config::node::Path;
use crate::config::types::Pipeline;
use crate::sms::numbers::Country;

pub(super) fn check(p: &Pipeline, report: &mut impl FnMut(Path, String)) {
    let Some(c) = &p.campaigns else { return };
    let at = Path::default().key("campaigns");
    if let Some(region) = &c.region {
        if Country::parse(region).is_none() {
            report(
                at.key("region"),
                format!("{region:?} is not a region: expected an ISO 3166 alpha-2 code such as KE or US"),
            );
        }
    }
    if c.timezone.parse::<chrono_tz::Tz>().is_err() {
        report(
            at.key("timezone"),
            format!(
                "{:?} is not a time zone: expected an IANA name such as Africa/Nairobi or UTC",
                c.timezone
            ),
        );
    }
    if !(1..=10_000).contains(&c.chunk) {
        report(
            at.key("chunk"),
            format!(
                "{} recipients per audience record: expected 1 to 10000",
                c.chunk
            ),
        );
    }
    if c.max_pending == 0 {
        report(
            at.key("max_pending"),
            "0 pending messages: expected at least 1".into(),
        );
    }
    for (backend, price) in &c.prices {
        let path = at.key("prices").key(backend);
        if !p.backends.iter().any(|b| b.name() == backend) {
            let names: Vec<&str> = p.backends.iter().map(|b| b.name()).collect();
            report(
                path.clone(),
                format!(
                    "no backend {backend:?} in this pipeline; its backends are: {}",
                    names.join(", ")
                ),
            );
        }
        let prices = std::iter::once(("segment".to_owned(), price.segment))
            .chain(price.prefixes.iter().map(|(k, v)| (k.clone(), *v)));
        for (what, value) in prices {
            if !value.is_finite() || value < 0.0 {
                report(
                    path.clone(),
                    format!("price {value} for {what}: expected a number ≥ 0"),
                );
            }
        }
        for prefix in price.prefixes.keys() {
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if !prefix.starts_with('+')
                || digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                report(
                    path.key("prefixes").key(prefix),
                    format!(
                        "{prefix:?} is not a number prefix: expected + and digits, such as +254"
                    ),
                );
            }
        }
    }
}
