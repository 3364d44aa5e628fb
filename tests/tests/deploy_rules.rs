//! The Prometheus rules shipped in `deploy/prometheus/` are valid and behave as their unit tests
//! say, checked by promtool itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// promtool from `FAPIAO_TEST_PROMTOOL`, else from `PATH`.
fn promtool() -> PathBuf {
    if let Some(path) = std::env::var_os("FAPIAO_TEST_PROMTOOL") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "promtool is not installed: run the tests through scripts/test, which installs it \
             (Debian package prometheus), or set FAPIAO_TEST_PROMTOOL"
        )
    })
}

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy")
        .join("prometheus")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(deploy())
        .output()
        .unwrap_or_else(|e| panic!("running promtool: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid() {
    let text = run(&["check", "rules", "fapiao-rules.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    let text = run(&["test", "rules", "fapiao-rules.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}
