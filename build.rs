//! Records the git revision for `tencent_live_exporter_build_info`.
use std::process::Command;

fn main() {
    let revision = std::env::var("TLE_GIT_REVISION").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    if let Some(r) = revision.filter(|r| !r.is_empty()) {
        println!("cargo:rustc-env=TLE_GIT_REVISION={r}");
    }
    println!("cargo:rerun-if-env-changed=TLE_GIT_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
