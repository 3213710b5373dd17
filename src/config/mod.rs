//! The pipeline YAML: parse with positions ([`node`]), interpolate `${VAR}`,
//! read each section into plain typed data ([`types`]), then check what only
//! the whole file can tell (`validate`) and what each later layer checks
//! ([`Check`]). Every error found is reported, each with its line, column,
//! path, the offending value and what was expected.

pub mod access;
pub mod analytics;
pub mod backends;
mod error;
pub mod export;
pub mod files;
pub mod http;
pub mod kafka;
pub mod modem;
pub mod node;
pub mod path;
mod read;
mod redact;
pub mod schema;
pub mod texts;
pub mod types;
mod validate;
mod value;
pub mod vars;

use std::path::Path as FsPath;

pub use backends::*;
pub use error::{ConfigError, ConfigErrors};
pub use node::{Kind, Node, Path, Step};
pub use types::*;

use read::{locate, Reader};
use redact::redact;

/// A check a later layer makes of a parsed pipeline (the router compiles
/// its routes, for one): what is wrong, by path. The config knows nothing
/// of those layers; [`crate::topology::CHECKS`] names them all, and
/// [`crate::topology::load_file`] loads a pipeline with every check.
pub type Check = fn(&Pipeline) -> Vec<(Path, String)>;

/// Read and check a pipeline file, with the process environment for
/// `${VAR}`, then run `checks`.
pub fn load_file(path: &FsPath, checks: &[Check]) -> Result<Pipeline, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError::new(
            0,
            0,
            Path::default(),
            format!("cannot read the file: {e}"),
        )],
    })?;
    let dir = path.parent().unwrap_or(FsPath::new("."));
    load_str_in(&text, &|k| std::env::var(k).ok(), dir, checks)
        .map_err(|errors| ConfigErrors { file, errors })
}

/// Read and check pipeline text, with `env` for `${VAR}`. Files it names
/// (`languages.files`) are relative to the current directory.
pub fn load_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    checks: &[Check],
) -> Result<Pipeline, Vec<ConfigError>> {
    load_str_in(text, env, FsPath::new("."), checks)
}

/// [`load_str`] for text read from a file in `dir` (the files it names are relative to `dir`).
pub fn load_str_in(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    dir: &FsPath,
    checks: &[Check],
) -> Result<Pipeline, Vec<ConfigError>> {
    let mut root = Node::parse(text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    root.interpolate(env, &Path::default(), &mut errors);
    let mut reader = Reader {
        root: &root,
        errors,
    };
    let mut pipeline = reader.pipeline();
    let mut errors = reader.errors;
    if let Some(pipeline) = &mut pipeline {
        read_translation_files(pipeline, dir, &root, &mut errors);
        validate::check(pipeline, &root, &mut errors);
        for check in checks {
            for (path, message) in check(pipeline) {
                let (line, column) = locate(&root, &path);
                errors.push(ConfigError::new(line, column, path, message));
            }
        }
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    redact(&mut errors, &root);
    match pipeline {
        Some(p) if errors.is_empty() => Ok(p),
        _ => Err(errors),
    }
}

/// Add the texts of `languages.files` to `languages.texts` (the pipeline's
/// own texts win over a file's). Files are confined to `dir` and
/// size-capped ([`texts::read_texts_file`]).
fn read_translation_files(
    p: &mut Pipeline,
    dir: &FsPath,
    root: &Node,
    errors: &mut Vec<ConfigError>,
) {
    for (i, name) in p.languages.files.clone().iter().enumerate() {
        let at = Path::default().key("languages").key("files").index(i);
        match texts::read_texts_file(dir, name) {
            Ok(texts) => {
                for (lang, texts) in texts {
                    let own = p.languages.texts.entry(lang).or_default();
                    for (k, v) in texts {
                        own.entry(k).or_insert(v);
                    }
                }
            }
            Err(message) => {
                let (line, column) = locate(root, &at);
                errors.push(ConfigError::new(line, column, at, message));
            }
        }
    }
}
