//! `ledgix keys` on a data directory, and `ledgix verify bundle --root-key` argument handling, through the
//! built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("ledgix-cli-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ledgix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledgix"))
        .args(args)
        // The defaults, whatever the caller's environment holds.
        .env_remove("VAULT_KEY_ID")
        .env_remove("VAULT_PRIVATE_KEY_FILE")
        .env_remove("VAULT_PRIVATE_KEY_BASE64")
        .env_remove("LEDGIX_VAULT_API_KEY")
        .output()
        .expect("the ledgix binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn rotate(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["keys", "rotate", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    ledgix(&args)
}

/// The kid a successful `keys rotate` printed.
fn rotated_kid(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        stdout(output),
        stderr(output)
    );
    let text = stdout(output);
    let kid = text
        .lines()
        .find_map(|line| line.strip_prefix("kid="))
        .unwrap_or_else(|| panic!("no kid= line in {text}"));
    let jwk: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(jwk["kid"], kid);
    assert_eq!(jwk["crv"], "Ed25519");
    assert!(text.contains("until it is restarted"), "{text}");
    assert!(text.contains("stays published"), "{text}");
    kid.to_string()
}

/// `keys list` rows: (kid, role, active_from, retired_at), and the active kid.
fn list(dir: &Path) -> (Vec<[String; 4]>, String) {
    let output = ledgix(&["keys", "list", "--data-dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["KID", "ROLE", "ACTIVE_FROM", "RETIRED_AT"]
    );
    let mut rows = Vec::new();
    let mut active = String::new();
    for line in lines {
        if let Some(kid) = line.strip_prefix("active: ") {
            active = kid.to_string();
            continue;
        }
        let cells: Vec<String> = line.split_whitespace().map(String::from).collect();
        rows.push(cells.try_into().unwrap_or_else(|c| panic!("bad row {c:?}")));
    }
    (rows, active)
}

fn pem_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "pem") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn rotating_twice_leaves_three_keys_and_only_the_last_active() {
    let dir = TempDir::new("rotate");
    let first = rotated_kid(&rotate(dir.path(), &[]));
    let second = rotated_kid(&rotate(dir.path(), &[]));
    assert_ne!(first, second, "every rotation gets a new kid");
    for kid in [&first, &second] {
        assert!(kid.starts_with("vault-key-001-"), "{kid}");
    }

    let (rows, active) = list(dir.path());
    let kids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(kids, ["vault-key-001", first.as_str(), second.as_str()]);
    assert_eq!(active, second);
    for row in &rows {
        assert_eq!(row[1], "root", "{row:?}");
        assert!(row[2].ends_with('Z'), "{row:?}");
    }
    for retired in &rows[..2] {
        assert!(
            retired[3].ends_with('Z'),
            "a retired key has retired_at: {retired:?}"
        );
    }
    assert_eq!(rows[2][3], "-", "the active key is not retired");
    // Only the active key's private half is left on disk.
    let pems = pem_files(dir.path());
    assert_eq!(pems.len(), 1, "{pems:?}");
    assert!(pems[0].ends_with(format!("{second}.pem")), "{pems:?}");
}

#[test]
fn a_chosen_kid_is_used_once_and_must_be_a_safe_name() {
    let dir = TempDir::new("kid");
    assert_eq!(rotated_kid(&rotate(dir.path(), &["--kid", "k2"])), "k2");
    let again = rotate(dir.path(), &["--kid", "k2"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already has a key k2"),
        "{}",
        stderr(&again)
    );
    let unsafe_kid = rotate(dir.path(), &["--kid", "../escape"]);
    assert!(!unsafe_kid.status.success());
    assert!(
        stderr(&unsafe_kid).contains("must be"),
        "{}",
        stderr(&unsafe_kid)
    );
    // The default after a chosen kid builds on it.
    let next = rotated_kid(&rotate(dir.path(), &[]));
    assert!(next.starts_with("k2-"), "{next}");
    let (rows, active) = list(dir.path());
    assert_eq!(rows.len(), 3);
    assert_eq!(active, next);
}

#[test]
fn a_missing_data_directory_is_refused_and_listing_creates_nothing() {
    let dir = TempDir::new("missing");
    let missing = dir.path().join("nope");
    for args in [
        vec!["keys", "rotate", "--data-dir", missing.to_str().unwrap()],
        vec!["keys", "list", "--data-dir", missing.to_str().unwrap()],
    ] {
        let output = ledgix(&args);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr(&output).contains("does not exist"),
            "{}",
            stderr(&output)
        );
    }
    assert!(!missing.exists());
    let empty = ledgix(&["keys", "list", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!empty.status.success());
    assert!(
        stderr(&empty).contains("no signing keys"),
        "{}",
        stderr(&empty)
    );
    assert!(pem_files(dir.path()).is_empty(), "listing created a key");
}

#[test]
fn verify_bundle_takes_root_keys() {
    let help = ledgix(&["verify", "bundle", "--help"]);
    assert!(help.status.success());
    assert!(
        stdout(&help).contains("--root-key <KEY>"),
        "{}",
        stdout(&help)
    );

    let dir = TempDir::new("verify");
    let absent = dir.path().join("bundle.json");
    let absent = absent.to_str().unwrap();
    // A malformed root key is an input error (exit 2), before the bundle is read.
    let bad = ledgix(&["verify", "bundle", absent, "--root-key", "not-a-key"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--root-key"), "{}", stderr(&bad));
    let short = ledgix(&["verify", "bundle", absent, "--root-key", "AAAA"]);
    assert_eq!(short.status.code(), Some(2), "{}", stderr(&short));

    // Well-formed keys, repeated, in each accepted form: the bundle file is what is missing now.
    let raw_url = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let raw_std = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    let jwk = dir.path().join("root.jwk");
    std::fs::write(
        &jwk,
        format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"root-1","x":"{raw_url}"}}"#),
    )
    .unwrap();
    let output = ledgix(&[
        "verify",
        "bundle",
        absent,
        "--root-key",
        raw_url,
        "--root-key",
        raw_std,
        "--root-key",
        &format!("root-1={raw_url}"),
        "--root-key",
        jwk.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("--root-key"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("bundle.json"),
        "{}",
        stderr(&output)
    );

    // A file that is no proof bundle is unreadable input too.
    std::fs::write(dir.path().join("bundle.json"), "{}").unwrap();
    let not_bundle = ledgix(&["verify", "bundle", absent, "--root-key", raw_url]);
    assert_eq!(not_bundle.status.code(), Some(2), "{}", stderr(&not_bundle));
    assert!(
        stderr(&not_bundle).contains("is not a proof bundle"),
        "{}",
        stderr(&not_bundle)
    );
}
