//! A pipeline loaded with every check: the config's own (types, names,
//! values, files) and each later layer's ([`CHECKS`]). What `smsflow run`
//! and `smsflow validate` use.

use std::path::Path;

use crate::config::{self, Check, ConfigError, ConfigErrors, Pipeline};
use crate::router;

/// Every layer's check of a pipeline, beyond the config's own.
pub const CHECKS: &[Check] = &[router::check];

/// Read and check a pipeline file, with the process environment for `${VAR}`.
pub fn load_file(path: &Path) -> Result<Pipeline, ConfigErrors> {
    config::load_file(path, CHECKS)
}

/// Read and check pipeline text, with `env` for `${VAR}`. Files it names
/// (`languages.files`) are relative to the current directory.
pub fn load_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, Vec<ConfigError>> {
    config::load_str(text, env, CHECKS)
}

/// [`load_str`] for text read from a file in `dir` (the files it names are
/// relative to `dir`).
pub fn load_str_in(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    dir: &Path,
) -> Result<Pipeline, Vec<ConfigError>> {
    config::load_str_in(text, env, dir, CHECKS)
}
