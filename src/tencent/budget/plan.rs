//! Which accounts share a request budget, decided in one place ([`Plan`]): by each account's
//! identity as Tencent counts it (the SecretId of long-term keys, the role of temporary ones;
//! Tencent Cloud API 3.0, "API 频率限制说明", document 1278/109059), joined by `rate_limit_group`.

use std::collections::HashMap;

use crate::tencent::credentials::{BaseSource, SecretIdFrom, SourceSpec};
use crate::tencent::credentials::{read_profile, read_secret_file};

/// What Tencent counts an account's calls against, as far as the exporter knows without asking:
/// `SecretId <id>` for long-term keys (read now from the file or profile that holds it),
/// `role <role_arn>` for `role_arn` and the TKE role, `CVM role <name>` for the CVM role. The text
/// names the key or role and holds no secret (a SecretId is not one). A file that cannot be read
/// now gives `secret_id_file <path>` or `profile [<name>] of <path>`, so that the account still
/// has a budget of its own.
pub fn identity(spec: &SourceSpec) -> String {
    if let Some(role) = &spec.assume_role {
        return format!("role {}", role.role_arn);
    }
    base_identity(&spec.base)
}

fn base_identity(base: &BaseSource) -> String {
    match base {
        BaseSource::Static {
            secret_id: SecretIdFrom::Inline(id),
            ..
        } => format!("SecretId {id}"),
        BaseSource::Static {
            secret_id: SecretIdFrom::File(path),
            ..
        } => read_secret_file(path, "secret_id_file").map_or_else(
            |_| format!("secret_id_file {}", path.display()),
            |id| format!("SecretId {id}"),
        ),
        BaseSource::Env(credentials) => format!("SecretId {}", credentials.secret_id),
        BaseSource::Profile { file, profile } => read_profile(file, profile).map_or_else(
            |_| format!("profile [{profile}] of {}", file.display()),
            |c| format!("SecretId {}", c.secret_id),
        ),
        BaseSource::CvmRole { role, .. } => match role {
            Some(role) => format!("CVM role {role}"),
            None => "CVM role of the instance".to_owned(),
        },
        BaseSource::Oidc(oidc) => format!("role {}", oidc.role_arn),
        // The chain signs with its first link that gives credentials.
        BaseSource::Chain(links) => links
            .iter()
            .find_map(|l| l.source.as_ref().ok())
            .map_or_else(|| "credential chain".to_owned(), base_identity),
    }
}

/// One account as the plan sees it.
#[derive(Clone, Copy, Debug)]
pub struct PlanAccount<'a> {
    /// The account's name.
    pub name: &'a str,
    /// Its credential configuration, for its [`identity`].
    pub credentials: &'a SourceSpec,
    /// Its `rate_limit_group`, if set.
    pub rate_limit_group: Option<&'a str>,
}

/// One budget of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBudget {
    /// Its name in logs and `--check-config`: `rate_limit_group "<name>"` when a group joins it,
    /// else its identity.
    pub name: String,
    /// The identities it holds, in configuration order, without repeats.
    pub identities: Vec<String>,
    /// Its accounts' names, in configuration order.
    pub accounts: Vec<String>,
}

/// Which accounts share a budget: the one place it is decided. Accounts with one identity share a
/// budget, and so do the accounts of one `rate_limit_group`, transitively (a group joins the
/// budget of every identity its accounts have: Tencent counts per key whatever label an account
/// has).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The budgets, in the configuration order of their first account.
    pub budgets: Vec<PlannedBudget>,
    /// Each account's identity, by name.
    pub identities: HashMap<String, String>,
}

impl Plan {
    /// Plans `accounts` (reads the key files and profiles they name; asks no service).
    pub fn new<'a>(accounts: impl IntoIterator<Item = PlanAccount<'a>>) -> Plan {
        let accounts: Vec<(PlanAccount<'a>, String)> = accounts
            .into_iter()
            .map(|a| (a, identity(a.credentials)))
            .collect();
        // Union-find over account positions: each joins the first account with a shared tie.
        fn root(parent: &[usize], mut i: usize) -> usize {
            while let Some(&p) = parent.get(i) {
                if p == i {
                    break;
                }
                i = p;
            }
            i
        }
        let mut parent: Vec<usize> = (0..accounts.len()).collect();
        let mut first_with: HashMap<String, usize> = HashMap::new();
        for (i, (account, id)) in accounts.iter().enumerate() {
            let group = account
                .rate_limit_group
                .map(|g| format!("rate_limit_group {g:?}"));
            for tie in std::iter::once(id.clone()).chain(group) {
                let j = *first_with.entry(tie).or_insert(i);
                let (a, b) = (root(&parent, i), root(&parent, j));
                if let Some(slot) = parent.get_mut(a.max(b)) {
                    *slot = a.min(b);
                }
            }
        }
        let mut roots: Vec<usize> = Vec::new();
        let mut plan = Plan::default();
        for (i, (account, id)) in accounts.iter().enumerate() {
            let r = root(&parent, i);
            let group = account
                .rate_limit_group
                .map(|g| format!("rate_limit_group {g:?}"));
            let budget = match roots.iter().position(|&k| k == r) {
                Some(n) => plan.budgets.get_mut(n),
                None => {
                    roots.push(r);
                    plan.budgets.push(PlannedBudget {
                        name: id.clone(),
                        identities: Vec::new(),
                        accounts: Vec::new(),
                    });
                    plan.budgets.last_mut()
                }
            };
            if let Some(budget) = budget {
                if let Some(group) = group {
                    if !budget.name.starts_with("rate_limit_group ") {
                        budget.name = group;
                    }
                }
                if !budget.identities.contains(id) {
                    budget.identities.push(id.clone());
                }
                budget.accounts.push(account.name.to_owned());
            }
            plan.identities.insert(account.name.to_owned(), id.clone());
        }
        plan
    }

    /// The budget `account` draws from.
    pub fn budget_of(&self, account: &str) -> Option<&PlannedBudget> {
        self.budgets
            .iter()
            .find(|b| b.accounts.iter().any(|a| a == account))
    }

    /// Says which accounts share a budget (start-up and reload): one line per shared budget.
    pub fn log(&self, requests_per_second: u32) {
        for budget in &self.budgets {
            if budget.accounts.len() > 1 || budget.identities.len() > 1 {
                tracing::info!(
                    budget = %budget.name,
                    identities = ?budget.identities,
                    accounts = ?budget.accounts,
                    requests_per_second,
                    "these accounts share one request budget (Tencent counts per sub-account)"
                );
            } else {
                tracing::debug!(budget = %budget.name, accounts = ?budget.accounts, "request budget");
            }
        }
    }
}
