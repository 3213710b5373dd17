//! Reply templates: `{name}` is replaced by a value, `{{` and `}}` are literal braces.

/// The placeholder names a template uses, or why it is malformed.
pub fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    walk(template, |part| {
        if let Part::Name(n) = part {
            names.push(n.to_owned());
        }
    })?;
    Ok(names)
}

/// Fill in a template. Unknown names become empty (validation rejects them first).
pub fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    // A template that does not parse was rejected by validation; if one gets
    // here anyway it is sent as written rather than dropped.
    let parsed = walk(template, |part| match part {
        Part::Text(t) => out.push_str(t),
        Part::Name(n) => out.push_str(&value(n).unwrap_or_default()),
    });
    match parsed {
        Ok(()) => out,
        Err(_) => template.to_owned(),
    }
}

enum Part<'a> {
    Text(&'a str),
    Name(&'a str),
}

fn walk<'a>(template: &'a str, mut f: impl FnMut(Part<'a>)) -> Result<(), String> {
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        f(Part::Text(&rest[..i]));
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            f(Part::Text("{"));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            f(Part::Text("}"));
            rest = after;
        } else if tail.starts_with('}') {
            return Err(format!(
                "lone `}}` in {template:?}: write `}}}}` for a literal brace"
            ));
        } else {
            let end = tail.find('}').ok_or_else(|| {
                format!("unclosed `{{` in {template:?}: write `{{{{` for a literal brace")
            })?;
            let name = &tail[1..end];
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(format!("`{{{name}}}` in {template:?} is not a placeholder: expected `{{name}}` with letters, digits and _"));
            }
            f(Part::Name(name));
            rest = &tail[end + 1..];
        }
    }
    f(Part::Text(rest));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let v = |n: &str| (n == "x").then(|| "1".to_string());
        assert_eq!(render("a {x} {{b}} {y}", v), "a 1 {b} ");
        assert_eq!(placeholders("{a}{b_2}").unwrap(), vec!["a", "b_2"]);
        assert!(placeholders("{a").is_err());
        assert!(placeholders("a}").is_err());
        assert!(placeholders("{a b}").is_err());
    }
}
