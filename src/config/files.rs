//! Files a pipeline names, checked when it is validated and read when it
//! runs: the durable bus's `data_dir` and a provider's `send.ca_file`.

use std::path::Path;

/// Whether `dir` can hold the bus: an existing directory we can write in,
/// or a path whose nearest existing ancestor is one (it is created at
/// start-up). The answer says what is wrong, for `validate`.
pub fn check_data_dir(dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err("`data_dir` is empty: expected a directory path".into());
    }
    let mut at = dir;
    while !at.exists() {
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => {
                at = Path::new(".");
                break;
            }
        }
    }
    if !at.is_dir() {
        return Err(format!(
            "{} is not a directory: `data_dir` must be a directory (or a path where one can be created)",
            at.display()
        ));
    }
    // A real write: permission bits do not tell about read-only mounts or ACLs.
    let probe = at.join(format!(".smsflow-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot write in {} ({e}): the bus's `data_dir` must be writable",
            at.display()
        )),
    }
}

/// The certificates of a PEM file, or an error naming the file (never its
/// contents).
pub fn ca_certificates(path: &str) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("ca_file {path:?} cannot be read: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| anyhow::anyhow!("ca_file {path:?} is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!(
            "ca_file {path:?} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"
        );
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_checks_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_data_dir(&dir.path().join("new/sub")), Ok(()));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = check_data_dir(&file.join("bus")).unwrap_err();
        assert!(e.contains("is not a directory"), "{e}");
        assert!(check_data_dir(Path::new("")).unwrap_err().contains("empty"));
    }
}
