//! The README's recipe for more than one exporter (section "Scaling"): every TOML block in it
//! is a configuration the exporter accepts, the two high-availability replicas together stay
//! within Tencent's 20 requests/second per key, and the shards split the accounts without
//! overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use tencent_live_exporter::config::{self, Config, Overrides};

/// The ```toml blocks of the README's "## Scaling" section, each with the file name its first
/// line gives (`# replica-a.toml: ...`).
fn scaling_blocks() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Scaling\n")
        .nth(1)
        .expect("README has a Scaling section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .split("```toml\n")
        .skip(1)
        .map(|block| {
            let body = block.split("```").next().unwrap_or_default().to_owned();
            let name = body
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# "))
                .and_then(|l| l.split(':').next())
                .unwrap_or_default()
                .to_owned();
            (name, body)
        })
        .collect()
}

fn load(name: &str, body: &str) -> Config {
    let dir = std::env::temp_dir().join(format!(
        "tle-scaling-{}-{}",
        std::process::id(),
        name.replace('/', "_")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    // The recipe's accounts read their keys from profiles: give them a credentials file.
    let credentials = dir.join("credentials");
    let profiles: String = body
        .lines()
        .filter_map(|l| l.trim().strip_prefix("profile = \""))
        .map(|p| {
            format!(
                "[{}]\nsecret_id = AKIDscaling\nsecret_key = scaling-key\n",
                p.trim_end_matches('"')
            )
        })
        .collect();
    std::fs::write(&credentials, profiles).unwrap();
    let env = BTreeMap::from([(
        "TENCENTCLOUD_CREDENTIALS_FILE".to_owned(),
        credentials.display().to_string(),
    )]);
    let loaded = config::load(Some(&path), &Overrides::default(), env);
    let _ = std::fs::remove_dir_all(&dir);
    loaded.unwrap_or_else(|e| panic!("README block {name} does not load: {}\n{body}", e.0))
}

#[test]
fn two_replicas_each_with_half_the_budget_stay_under_the_api_limit() {
    let blocks = scaling_blocks();
    let replicas: Vec<Config> = blocks
        .iter()
        .filter(|(name, _)| name.starts_with("replica"))
        .map(|(name, body)| load(name, body))
        .collect();
    assert_eq!(replicas.len(), 2, "the recipe shows both replicas' files");
    let total: u32 = replicas.iter().map(|c| c.poll.requests_per_second).sum();
    assert_eq!(
        replicas[0].poll.requests_per_second, 10,
        "half of the 20/s per key"
    );
    assert!(
        total <= 20,
        "two replicas would send {total}/s with one key"
    );
    let names = |c: &Config| -> Vec<String> { c.accounts.iter().map(|a| a.name.clone()).collect() };
    assert_eq!(
        names(&replicas[0]),
        names(&replicas[1]),
        "both replicas poll every account"
    );
}

#[test]
fn shards_split_the_accounts_without_overlap() {
    let shards: Vec<Config> = scaling_blocks()
        .iter()
        .filter(|(name, _)| name.starts_with("shard"))
        .map(|(name, body)| load(name, body))
        .collect();
    assert!(shards.len() >= 2, "the recipe shows at least two shards");
    let mut seen = BTreeSet::new();
    for shard in &shards {
        assert!(!shard.accounts.is_empty());
        for account in &shard.accounts {
            assert!(
                seen.insert(account.name.clone()),
                "account {} is in two shards: it would be polled twice",
                account.name
            );
        }
    }
}
