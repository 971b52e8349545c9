//! The README's conformance feature table, and the report of a run checked against it.
//!
//! The table sits between two marker comments in the workspace README. Each row names an
//! upstream feature, whether we support it (`supported` / `not yet`), the data-plane result,
//! and the plan for what is not supported. The support column decides skips (a test with a
//! `not yet` feature is reported as skipped, though it still runs); the result column is
//! generated from this report: a run fails when it differs, and `GATEWAY_CONFORMANCE_BLESS=1`
//! rewrites it. A run also fails when a `not yet` feature passes every case (the table must
//! then claim it) or when a feature of the suite has no row.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use conformance::{Profiles, TestCase};

use crate::TestRun;

const BEGIN: &str = "<!-- BEGIN conformance features";
const END: &str = "<!-- END conformance features -->";
/// Set to rewrite the generated column of the README table.
const BLESS: &str = "GATEWAY_CONFORMANCE_BLESS";

/// One row of the table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) feature: String,
    pub(crate) supported: bool,
    pub(crate) result: String,
    pub(crate) plan: String,
}

/// The README's feature table.
pub(crate) struct Table {
    path: PathBuf,
    readme: String,
    rows: Vec<Row>,
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect()
}

impl Table {
    pub(crate) fn read() -> Result<Table, String> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let start = readme
            .find(BEGIN)
            .ok_or_else(|| format!("{} has no `{BEGIN} …` marker", path.display()))?;
        let end = readme
            .find(END)
            .ok_or_else(|| format!("{} has no `{END}` marker", path.display()))?;
        let mut rows = Vec::new();
        for line in readme[start..end].lines().filter(|l| l.starts_with('|')) {
            let c = cells(line);
            let Some(feature) = c
                .first()
                .and_then(|f| f.strip_prefix('`')?.strip_suffix('`'))
            else {
                continue; // header and separator rows
            };
            let supported = match c.get(1).map(String::as_str) {
                Some("supported") => true,
                Some("not yet") => false,
                other => {
                    return Err(format!(
                        "README feature table: row {feature}: support {other:?} is neither \
                         `supported` nor `not yet`"
                    ));
                }
            };
            rows.push(Row {
                feature: feature.to_owned(),
                supported,
                result: c.get(2).cloned().unwrap_or_default(),
                plan: c.get(3).cloned().unwrap_or_default(),
            });
        }
        Ok(Table { path, readme, rows })
    }

    fn row(&self, feature: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.feature == feature)
    }

    /// Why `test` is skipped: its first feature the table marks `not yet`.
    pub(crate) fn skip_reason(&self, test: &TestCase) -> Option<String> {
        test.features
            .iter()
            .find(|f| self.row(f).is_some_and(|r| !r.supported))
            .map(|f| format!("{f} not supported yet"))
    }
}

/// Pass / fail / skip counts.
#[derive(Clone, Copy, Default)]
struct Counts {
    tests: [usize; 3],
    cases: [usize; 3],
}

impl Counts {
    fn add(&mut self, slot: usize, cases: usize, failed_cases: usize) {
        self.tests[slot] += 1;
        match slot {
            0 => self.cases[0] += cases,
            1 => {
                self.cases[0] += cases.saturating_sub(failed_cases);
                self.cases[1] += failed_cases.min(cases);
            }
            _ => self.cases[2] += cases,
        }
    }

    fn line(&self) -> String {
        format!(
            "tests {} passed, {} failed, {} skipped; cases {} passed, {} failed, {} skipped",
            self.tests[0],
            self.tests[1],
            self.tests[2],
            self.cases[0],
            self.cases[1],
            self.cases[2]
        )
    }
}

/// The printed report and its verdict.
pub(crate) struct Report {
    pub(crate) text: String,
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) ok: bool,
}

pub(crate) fn report(
    results: &[(&TestCase, Option<String>, TestRun)],
    table: &Table,
    status_only: &[&TestCase],
    port_offset: u16,
    partial: bool,
) -> Report {
    let mut text = String::from(
        "\nGateway API conformance, data plane (requests through a running gateway):\n",
    );
    if port_offset != 0 {
        let _ = writeln!(
            text,
            "  (no privilege for ports below 1024: listeners bound at manifest port + {port_offset})"
        );
    }
    let mut problems: Vec<String> = Vec::new();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut per_profile: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let mut per_feature: BTreeMap<String, Counts> = BTreeMap::new();
    // Features of skipped tests: (cases, cases passing when run anyway).
    let mut unsupported_runs: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (test, skip, run) in results {
        let failing = run.failures.len();
        let slot = match (skip, failing) {
            (Some(reason), _) => {
                skipped += 1;
                let _ = writeln!(
                    text,
                    "  SKIP  {:<52} {:>3} cases  ({reason}; run anyway: {} of {} pass)",
                    test.test,
                    run.cases,
                    run.cases.saturating_sub(failing),
                    run.cases
                );
                for f in &test.features {
                    if table.row(f).is_some_and(|r| !r.supported) {
                        let e = unsupported_runs.entry(f.clone()).or_default();
                        e.0 += run.cases;
                        e.1 += run.cases.saturating_sub(failing);
                    }
                }
                2
            }
            (None, 0) => {
                passed += 1;
                let _ = writeln!(
                    text,
                    "  PASS  {:<52} {:>3} cases  {:>6.2}s",
                    test.test,
                    run.cases,
                    run.elapsed.as_secs_f64()
                );
                0
            }
            (None, n) => {
                failed += 1;
                let _ = writeln!(
                    text,
                    "  FAIL  {:<52} {:>3} cases, {n} failing",
                    test.test, run.cases
                );
                for f in &run.failures {
                    let _ = writeln!(text, "          - {f}");
                }
                1
            }
        };
        if let Profiles::Map(profiles) = &test.profiles {
            for (profile, level) in profiles {
                per_profile
                    .entry((profile.clone(), level.clone()))
                    .or_default()
                    .add(slot, run.cases, failing);
            }
        }
        for f in &test.features {
            per_feature
                .entry(f.clone())
                .or_default()
                .add(slot, run.cases, failing);
        }
    }
    let _ = writeln!(
        text,
        "  status-only tests (checked by the `status` test): {}",
        status_only.len()
    );
    let _ = writeln!(text, "  per profile and support level:");
    for ((profile, level), counts) in &per_profile {
        let _ = writeln!(text, "    {profile:<13} {level:<9} {}", counts.line());
    }
    let _ = writeln!(text, "  per feature:");
    for (feature, counts) in &per_feature {
        let _ = writeln!(text, "    {feature:<52} {}", counts.line());
    }

    // The README table: every feature has a row, the result column is what this run shows.
    if !partial {
        check_table(
            &mut problems,
            &mut text,
            &per_feature,
            &unsupported_runs,
            table,
            status_only,
        );
    }
    if !problems.is_empty() {
        let _ = writeln!(text, "  feature table check FAILED:");
        for p in &problems {
            let _ = writeln!(text, "    - {p}");
        }
    }
    Report {
        text,
        passed,
        failed,
        skipped,
        ok: failed == 0 && problems.is_empty(),
    }
}

/// Compares the README table with this run (see the module documentation).
fn check_table(
    problems: &mut Vec<String>,
    text: &mut String,
    per_feature: &BTreeMap<String, Counts>,
    unsupported_runs: &BTreeMap<String, (usize, usize)>,
    table: &Table,
    status_only: &[&TestCase],
) {
    let mut rows = table.rows.clone();
    for (feature, counts) in per_feature {
        let Some(row) = rows.iter_mut().find(|r| &r.feature == feature) else {
            problems.push(format!(
                "README feature table has no row for {feature}; add one"
            ));
            continue;
        };
        row.result = if row.supported {
            let skipped = if counts.cases[2] > 0 {
                format!(", {} skipped", counts.cases[2])
            } else {
                String::new()
            };
            format!(
                "{}: {} pass, {} fail{skipped}",
                sizes(counts),
                counts.cases[0],
                counts.cases[1]
            )
        } else {
            format!("skipped ({})", sizes(counts))
        };
        if !row.supported
            && let Some((cases, passing)) = unsupported_runs.get(feature)
            && *cases > 0
            && cases == passing
        {
            problems.push(format!(
                "README says {feature} is not supported yet, but all {cases} of its cases pass; \
                 mark it supported"
            ));
        }
    }
    for row in &mut rows {
        if !per_feature.contains_key(&row.feature) {
            row.result = "status tests only".to_owned();
        }
    }
    let status_features: BTreeSet<&String> = status_only.iter().flat_map(|t| &t.features).collect();
    for feature in status_features {
        if !per_feature.contains_key(feature) && table.row(feature).is_none() {
            problems.push(format!(
                "README feature table has no row for {feature} (status tests only); add one"
            ));
        }
    }
    let generated = render(&rows);
    let start = table.readme.find(BEGIN).unwrap_or(0);
    let end = table.readme.find(END).unwrap_or(0);
    let block_start = table.readme[start..]
        .find('\n')
        .map(|i| start + i + 1)
        .unwrap_or(start);
    let current = &table.readme[block_start..end];
    if current != generated {
        if std::env::var_os(BLESS).is_some() {
            let mut readme = table.readme.clone();
            readme.replace_range(block_start..end, &generated);
            match std::fs::write(&table.path, readme) {
                Ok(()) => {
                    let _ = writeln!(text, "  README feature table rewritten ({BLESS} set)");
                }
                Err(e) => problems.push(format!("cannot rewrite {}: {e}", table.path.display())),
            }
        } else {
            problems.push(format!(
                "README feature table differs from this run; run `{BLESS}=1 cargo test -p \
                 conformance --test dataplane` and commit the README. Expected:\n{generated}"
            ));
        }
    }
}

/// `1 test, 2 cases`.
fn sizes(counts: &Counts) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(counts.tests.iter().sum(), "test"),
        plural(counts.cases.iter().sum(), "case")
    )
}

fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| upstream feature | support | data plane (generated by `cargo test -p conformance`) | plan |\n| --- | --- | --- | --- |\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            r.feature,
            if r.supported { "supported" } else { "not yet" },
            r.result,
            r.plan
        );
    }
    out
}
