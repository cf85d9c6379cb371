//! The Simplified Chinese README, `README.zh-CN.md`, held to the English `README.md`: its flags,
//! configuration-key, credentials, metrics and alert-list tables name exactly the identifiers
//! (flags, keys, credential sources, metric names, alert names) the English tables of the same
//! section name; every alert of `deploy/prometheus/alerts.yml` has a runbook entry (含义 / 检查 /
//! 处理) under the same anchor as in the English runbook; its links land on anchors that exist;
//! and each README links the other. The English README is the contract (issue 21): when a row is
//! added there, these tests name the row the Chinese one lacks.

use std::collections::BTreeSet;

use crate::support::repo_path;

/// The sections compared: (English heading, Chinese heading), each as written in its file. A
/// section runs to the next heading of its level or above, so `## Credentials` includes both of
/// its tables.
const SECTIONS: &[(&str, &str)] = &[
    ("### Flags", "### 命令行参数"),
    ("### File and environment", "### 配置文件与环境变量"),
    ("## Credentials", "## 凭证"),
    ("## Metrics", "## 指标"),
    ("### Alert list", "### 告警列表"),
];

/// The Chinese runbook section, whose `####` entries are one per alert.
const ZH_RUNBOOK: &str = "### 处理手册（Runbook）";

/// The labels every Chinese runbook entry has (the English Means / Check / Do).
const ZH_RUNBOOK_LABELS: &[&str] = &["**含义：**", "**检查：**", "**处理：**"];

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The Markdown heading level of `line` (`## x` is 2), or `None` for any other line.
fn heading_level(line: &str) -> Option<usize> {
    let level = line.chars().take_while(|&c| c == '#').count();
    (level > 0 && line[level..].starts_with(' ')).then_some(level)
}

/// The lines of `text` outside fenced code blocks (a `# comment` in a ```sh block is no heading,
/// a `|` in one is no table).
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push(line);
        }
    }
    out
}

/// The prose lines under `heading` (exactly that line), up to the next heading of its level or
/// above; `None` when the heading is not there.
fn section<'a>(text: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let level = heading_level(heading).expect("a heading");
    let lines = prose_lines(text);
    let start = lines.iter().position(|l| l.trim_end() == heading)?;
    Some(
        lines[start + 1..]
            .iter()
            .take_while(|l| heading_level(l).is_none_or(|l| l > level))
            .copied()
            .collect(),
    )
}

/// The identifiers the tables of `lines` name: of every data row (not the header nor the `|---|`
/// line), each backticked span of the first cell, up to its first space (`--config.file PATH` is
/// `--config.file`). Shorthands (`_used_bytes`) are kept as written: both READMEs write the same.
fn table_identifiers(lines: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut row_of_table = 0;
    for line in lines {
        if !line.starts_with('|') {
            row_of_table = 0;
            continue;
        }
        row_of_table += 1;
        if row_of_table <= 2 {
            continue; // the header and the |---| line
        }
        let first_cell = line.split('|').nth(1).unwrap_or("");
        for span in first_cell.split('`').skip(1).step_by(2) {
            if let Some(word) = span.split_whitespace().next() {
                out.insert(word.to_owned());
            }
        }
    }
    out
}

/// What differs between the tables of the two READMEs, one message per identifier, naming the
/// section and the side that lacks it; empty when they agree.
fn table_differences(english: &str, chinese: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (en_heading, zh_heading) in SECTIONS {
        let (Some(en), Some(zh)) = (section(english, en_heading), section(chinese, zh_heading))
        else {
            out.push(format!(
                "section missing: README.md `{en_heading}` found: {}, README.zh-CN.md \
                 `{zh_heading}` found: {}",
                section(english, en_heading).is_some(),
                section(chinese, zh_heading).is_some()
            ));
            continue;
        };
        let (en, zh) = (table_identifiers(&en), table_identifiers(&zh));
        if en.is_empty() {
            out.push(format!("README.md `{en_heading}` has no table rows"));
        }
        for missing in en.difference(&zh) {
            out.push(format!(
                "`{missing}` is in README.md `{en_heading}` but missing from README.zh-CN.md \
                 `{zh_heading}`"
            ));
        }
        for extra in zh.difference(&en) {
            out.push(format!(
                "`{extra}` is in README.zh-CN.md `{zh_heading}` but missing from README.md \
                 `{en_heading}`"
            ));
        }
    }
    out
}

/// The alerts of `alerts` without a complete entry in the Chinese runbook section: the anchor the
/// English runbook uses (`runbook-<name in lower case>`, what `runbookURLPattern` points at), the
/// `#### <name>` heading right under it, and the three labels before the next entry.
fn runbook_gaps(chinese: &str, alerts: &[String]) -> Vec<String> {
    let Some(lines) = section(chinese, ZH_RUNBOOK) else {
        return vec![format!("README.zh-CN.md has no `{ZH_RUNBOOK}` section")];
    };
    let mut out = Vec::new();
    for alert in alerts {
        let anchor = format!("<a id=\"runbook-{}\"></a>", alert.to_lowercase());
        let heading = format!("#### {alert}");
        let Some(at) = lines.iter().position(|l| l.trim_end() == heading) else {
            out.push(format!("{alert}: no `{heading}` in `{ZH_RUNBOOK}`"));
            continue;
        };
        let above = lines[..at].iter().rev().find(|l| !l.trim().is_empty());
        if above.map(|l| l.trim()) != Some(anchor.as_str()) {
            out.push(format!(
                "{alert}: `{anchor}` is not right above `{heading}`"
            ));
        }
        let body: Vec<&str> = lines[at + 1..]
            .iter()
            .take_while(|l| !l.starts_with("<a id=") && heading_level(l).is_none())
            .copied()
            .collect();
        for label in ZH_RUNBOOK_LABELS {
            if !body.iter().any(|l| l.contains(label)) {
                out.push(format!("{alert}: its entry has no {label}"));
            }
        }
    }
    out
}

/// The `alert` names of the rules in `deploy/prometheus/alerts.yml`.
fn alert_names() -> Vec<String> {
    let rules: serde_json::Value =
        serde_norway::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml parses");
    let names: Vec<String> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    assert!(!names.is_empty(), "no alert rule in alerts.yml");
    names
}

#[test]
fn zh_cn_tables_name_what_the_english_tables_name() {
    let differences = table_differences(&read("README.md"), &read("README.zh-CN.md"));
    assert!(
        differences.is_empty(),
        "README.zh-CN.md's tables disagree with README.md's:\n{}",
        differences.join("\n")
    );
}

#[test]
fn zh_cn_runbook_has_an_entry_for_every_alert() {
    let gaps = runbook_gaps(&read("README.zh-CN.md"), &alert_names());
    assert!(
        gaps.is_empty(),
        "README.zh-CN.md's runbook:\n{}",
        gaps.join("\n")
    );
}

#[test]
fn each_readme_links_the_other() {
    let english = read("README.md");
    let top: Vec<&str> = english.lines().take(5).collect();
    assert!(
        top.contains(&"[中文](README.zh-CN.md)"),
        "README.md's first lines must link the Chinese README: {top:?}"
    );
    let chinese = read("README.zh-CN.md");
    let top: Vec<&str> = chinese.lines().take(5).collect();
    assert!(
        top.iter().any(|l| l.contains("[English](README.md)")),
        "README.zh-CN.md's first lines must link README.md: {top:?}"
    );
}

/// The checks see what they check: a row removed from either README, a runbook heading, anchor
/// or label removed, are each reported on the right side (the real files with lines taken out;
/// what the real files already disagree on is left to the tests above).
#[test]
fn a_removed_row_or_runbook_entry_is_reported() {
    let english = read("README.md");
    let chinese = read("README.zh-CN.md");
    let without = |text: &str, prefix: &str| -> String {
        let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with(prefix)).collect();
        assert!(
            kept.len() < text.lines().count(),
            "no line starts with {prefix:?}"
        );
        kept.join("\n")
    };
    let baseline = table_differences(&english, &chinese);
    let new_differences = |english: &str, chinese: &str| -> Vec<String> {
        let all = table_differences(english, chinese);
        all.into_iter().filter(|d| !baseline.contains(d)).collect()
    };

    assert_eq!(
        new_differences(&english, &without(&chinese, "| `--once`")),
        ["`--once` is in README.md `### Flags` but missing from README.zh-CN.md `### 命令行参数`"]
    );
    assert_eq!(
        new_differences(&without(&english, "| `tencent_live_up`"), &chinese),
        [
            "`tencent_live_up` is in README.zh-CN.md `## 指标` but missing from README.md `## Metrics`"
        ]
    );
    assert_eq!(
        new_differences(&english, &without(&chinese, "| `accounts[].external_id`")),
        [
            "`accounts[].external_id` is in README.md `## Credentials` but missing from \
          README.zh-CN.md `## 凭证`"
        ]
    );
    assert_eq!(
        new_differences(&english, &without(&chinese, "| `poll.page_size`")),
        [
            "`poll.page_size` is in README.md `### File and environment` but missing from \
          README.zh-CN.md `### 配置文件与环境变量`"
        ]
    );
    let gone = new_differences(&english, &without(&chinese, "### 命令行参数"));
    assert!(
        gone.len() == 1 && gone[0].starts_with("section missing"),
        "{gone:?}"
    );

    let alerts = alert_names();
    let baseline = runbook_gaps(&chinese, &alerts);
    let new_gaps = |chinese: &str| -> Vec<String> {
        let all = runbook_gaps(chinese, &alerts);
        all.into_iter().filter(|g| !baseline.contains(g)).collect()
    };
    let frozen = without(&chinese, "#### TencentLiveQuotaFrozen");
    assert_eq!(
        new_gaps(&frozen),
        ["TencentLiveQuotaFrozen: no `#### TencentLiveQuotaFrozen` in `### 处理手册（Runbook）`"]
    );
    let stale = without(&chinese, "<a id=\"runbook-tencentlivedatastale\">");
    assert_eq!(
        new_gaps(&stale),
        [
            "TencentLiveDataStale: `<a id=\"runbook-tencentlivedatastale\"></a>` is not right above \
          `#### TencentLiveDataStale`"
        ]
    );
    // Every entry loses its 处理 line: each alert with an entry is reported once more.
    let gaps = new_gaps(&without(&chinese, "- **处理：**"));
    assert_eq!(gaps.len() + baseline.len(), alerts.len(), "{gaps:?}");
    assert!(
        gaps.iter().all(|g| g.ends_with("has no **处理：**")),
        "{gaps:?}"
    );
    assert_eq!(
        runbook_gaps(&chinese, &["TencentLiveNotAnAlert".to_owned()]).len(),
        1
    );
}

/// GitHub's anchor of a heading's text: lower case, spaces to `-`, punctuation dropped (letters
/// of any script, digits, `-` and `_` kept).
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of `text`: its headings' and its `<a id="…">`s.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in prose_lines(text) {
        if let Some(level) = heading_level(line) {
            out.insert(github_anchor(&line[level..]));
        }
        for rest in line.split("<a id=\"").skip(1) {
            out.insert(rest.split('"').next().unwrap_or("").to_owned());
        }
    }
    out
}

/// The Chinese README sends readers to the English one for much: every `README.md#…` link and
/// every `#…` link of its own lands on a heading or anchor that exists (an English heading renamed
/// in parallel breaks this).
#[test]
fn zh_cn_links_land_on_existing_anchors() {
    let english = anchors(&read("README.md"));
    let chinese_text = read("README.zh-CN.md");
    let chinese = anchors(&chinese_text);
    let mut broken = Vec::new();
    let mut seen = 0;
    for part in chinese_text.split("](").skip(1) {
        let target = part.split(')').next().unwrap_or("");
        let (file, anchor) = match target.split_once('#') {
            Some(("README.md", anchor)) => ("README.md", anchor),
            Some(("", anchor)) => ("README.zh-CN.md", anchor),
            _ => continue,
        };
        seen += 1;
        let known = if file == "README.md" {
            &english
        } else {
            &chinese
        };
        if !known.contains(anchor) {
            broken.push(target.to_owned());
        }
    }
    assert!(seen >= 10, "only {seen} anchor links found");
    assert!(
        broken.is_empty(),
        "README.zh-CN.md links to missing anchors: {broken:?}"
    );
    assert!(
        english.contains("see-a-pool-alert-fire-with-the-demo"),
        "{english:?}"
    );
    assert!(chinese.contains("安装"), "{chinese:?}");
}

#[test]
fn the_table_parser_reads_first_cells_outside_code_blocks() {
    let text = "## A\n\n| flag | meaning |\n|---|---|\n| `--x PATH` | `--not-this` |\n\
                | `--version`, `-V` | |\n\n```sh\n# not a heading\n| `--fenced` | |\n```\n\
                ### Sub\n\n| k | v |\n|---|---|\n| `a.b` / `c` | |\n## B\n| h |\n|---|\n| `--b` |\n";
    let ids = table_identifiers(&section(text, "## A").expect("## A"));
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(ids, ["--version", "--x", "-V", "a.b", "c"]);
}
