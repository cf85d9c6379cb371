//! `--check-config`: the effective configuration printed as TOML that parses back, secrets
//! redacted, strings escaped by the `toml` crate.

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::Url;

use super::{Config, ENV_SECRET_ID, ENV_SECRET_KEY};
use crate::tencent::credentials::{
    BaseSource, Credentials, SecretIdFrom, SecretKeyFrom, SourceSpec,
};

impl Config {
    /// The effective configuration as TOML, secrets redacted (`--check-config`).
    pub fn to_redacted_toml(&self) -> String {
        let d = |d: Duration| toml_string(&humantime::format_duration(d).to_string());
        let mut s = String::new();
        let _ = writeln!(s, "[web]");
        match self.web.listen_addresses.as_slice() {
            [one] => {
                let _ = writeln!(s, "listen_address = {}", toml_string(&one.to_string()));
            }
            many => {
                let list: Vec<String> = many.iter().map(|a| toml_string(&a.to_string())).collect();
                let _ = writeln!(s, "listen_address = [{}]", list.join(", "));
            }
        }
        let _ = writeln!(
            s,
            "telemetry_path = {}",
            toml_string(&self.web.telemetry_path)
        );
        let p = &self.poll;
        let _ = writeln!(s, "\n[poll]");
        let _ = writeln!(s, "interval = {}", d(p.interval));
        let _ = writeln!(s, "timeout = {}", d(p.timeout));
        let _ = writeln!(s, "requests_per_second = {}", p.requests_per_second);
        let _ = writeln!(s, "page_size = {}", p.page_size);
        let types: Vec<String> = p
            .package_types
            .iter()
            .map(|q| toml_string(q.label()))
            .collect();
        let _ = writeln!(s, "package_types = [{}]", types.join(", "));
        let _ = writeln!(s, "max_retries = {}", p.retry.max_retries);
        let _ = writeln!(s, "backoff_base = {}", d(p.retry.backoff_base));
        let _ = writeln!(s, "backoff_max = {}", d(p.retry.backoff_max));
        let _ = writeln!(s, "max_staleness = {}", d(p.max_staleness));
        for a in &self.accounts {
            let _ = writeln!(s, "\n[[accounts]]");
            let _ = writeln!(s, "name = {}", toml_string(&a.name));
            write_credentials(&mut s, &a.credentials);
            let _ = writeln!(
                s,
                "endpoint = {}",
                toml_string(a.endpoint.as_str().trim_end_matches('/'))
            );
            if let Some(group) = &a.rate_limit_group {
                let _ = writeln!(s, "rate_limit_group = {group:?}");
            }
        }
        let _ = writeln!(
            s,
            "\n# Request budgets ({} calls per second each):",
            p.requests_per_second
        );
        for budget in self.budget_plan().budgets {
            let names: Vec<String> = budget.accounts.iter().map(|n| format!("{n:?}")).collect();
            let shared = if names.len() > 1 { " (shared)" } else { "" };
            let _ = writeln!(
                s,
                "# {}{shared}: {} (counted against {})",
                comment(&budget.name),
                comment(&names.join(", ")),
                comment(&budget.identities.join(", "))
            );
        }
        s
    }
}

/// The `[[accounts]]` lines of a credential source, as keys that parse back (secrets as
/// `"[REDACTED]"`) and comments for what was resolved from the environment.
pub(super) fn write_credentials(s: &mut String, spec: &SourceSpec) {
    let _ = writeln!(s, "credentials = {}", toml_string(spec.base.name()));
    let url = |u: &Url| toml_string(u.as_str().trim_end_matches('/'));
    let mut sts: Option<(&str, &Url)> = spec
        .assume_role
        .as_ref()
        .map(|r| (r.session_name.as_str(), &r.sts_endpoint));
    let env_comment = |s: &mut String, c: &Credentials| {
        let _ = writeln!(
            s,
            "# {ENV_SECRET_ID} = {}, {ENV_SECRET_KEY} = \"[REDACTED]\"",
            toml_string(&c.secret_id)
        );
        if c.token.is_some() {
            let _ = writeln!(s, "# session token: [REDACTED]");
        }
    };
    match &spec.base {
        BaseSource::Static {
            secret_id,
            secret_key,
        } => {
            match secret_id {
                SecretIdFrom::Inline(id) => {
                    let _ = writeln!(s, "secret_id = {}", toml_string(id));
                }
                SecretIdFrom::File(path) => {
                    let _ = writeln!(
                        s,
                        "secret_id_file = {}",
                        toml_string(&path.display().to_string())
                    );
                }
            }
            match secret_key {
                SecretKeyFrom::Inline(_) => {
                    let _ = writeln!(s, "secret_key = \"[REDACTED]\"");
                }
                SecretKeyFrom::File(path) => {
                    let _ = writeln!(
                        s,
                        "secret_key_file = {}",
                        toml_string(&path.display().to_string())
                    );
                }
            }
        }
        BaseSource::Env(c) => env_comment(s, c),
        BaseSource::Profile { file, profile } => {
            let _ = writeln!(s, "profile = {}", toml_string(profile));
            let _ = writeln!(s, "# file: {}", comment(&file.display().to_string()));
        }
        BaseSource::CvmRole {
            role,
            metadata_endpoint,
        } => {
            if let Some(role) = role {
                let _ = writeln!(s, "role = {}", toml_string(role));
            }
            let _ = writeln!(s, "metadata_endpoint = {}", url(metadata_endpoint));
        }
        BaseSource::Oidc(o) => {
            let _ = writeln!(
                s,
                "# TKE pod identity: region {}, provider {}, role {}, token file {}",
                comment(&o.region),
                comment(&o.provider_id),
                comment(&o.role_arn),
                comment(&o.token_file.display().to_string())
            );
            sts = Some((&o.session_name, &o.sts_endpoint));
        }
        BaseSource::Chain(links) => {
            for link in links {
                match &link.source {
                    Err(why) => {
                        let _ = writeln!(s, "# chain: {}: skipped ({})", link.name, comment(why));
                    }
                    Ok(BaseSource::Env(c)) => {
                        let _ = writeln!(s, "# chain: env:");
                        env_comment(s, c);
                    }
                    Ok(BaseSource::Profile { file, profile }) => {
                        let _ = writeln!(
                            s,
                            "# chain: profile: {}",
                            comment(&file.display().to_string())
                        );
                        let _ = writeln!(s, "profile = {}", toml_string(profile));
                    }
                    Ok(BaseSource::CvmRole {
                        role,
                        metadata_endpoint,
                    }) => {
                        let _ = writeln!(s, "# chain: cvm_role:");
                        if let Some(role) = role {
                            let _ = writeln!(s, "role = {}", toml_string(role));
                        }
                        let _ = writeln!(s, "metadata_endpoint = {}", url(metadata_endpoint));
                    }
                    Ok(BaseSource::Oidc(o)) => {
                        let _ = writeln!(
                            s,
                            "# chain: oidc: region {}, provider {}, role {}, token file {}",
                            comment(&o.region),
                            comment(&o.provider_id),
                            comment(&o.role_arn),
                            comment(&o.token_file.display().to_string())
                        );
                        sts = Some((&o.session_name, &o.sts_endpoint));
                    }
                    Ok(other) => {
                        let _ = writeln!(s, "# chain: {}", other.name());
                    }
                }
            }
        }
    }
    if let Some(role) = &spec.assume_role {
        let _ = writeln!(s, "role_arn = {}", toml_string(&role.role_arn));
        if role.external_id.is_some() {
            let _ = writeln!(s, "external_id = \"[REDACTED]\"");
        }
    }
    if let Some((session_name, endpoint)) = sts {
        let _ = writeln!(s, "role_session_name = {}", toml_string(session_name));
        let _ = writeln!(s, "sts_endpoint = {}", url(endpoint));
    }
}

/// `s` as a TOML basic string, escaped as the TOML spec requires (quotes, backslashes, control
/// characters), so that `--check-config` output always parses back.
pub(super) fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `s` made safe for a TOML comment, which may hold no control character but tab: those are
/// written as Rust escapes (`\n`, `\u{1b}`). `main` uses it for `--check-config`'s credential
/// report, whose lines hold SecretIds and error texts from files and the environment.
pub fn comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
