//! From rule-file text to validated [`Rules`], collecting every error.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;

use chrono::NaiveDate;
use toml::Spanned;

use super::raw::{Algorithm, RawExampleKey, RawPort, RawRules};
use super::{Endpoint, Example, KeyPlacement, Keyspace, Placement, Policy, Rules, Shard, TablePlacement, TableRule};
use crate::sharding::hash::{HashRing, check_cover};
use crate::sharding::key::{Literal, datetime_to_micros, parse_timestamp};
use crate::sharding::time_range::{TimeRange, TimeRanges, generate};
use crate::sharding::{KeyType, MAX_SHARDS, ShardId, Slice, TextCollation};

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found in one rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleErrors {
    pub origin: String,
    pub errors: Vec<RuleError>,
}

impl RuleErrors {
    pub(super) fn io(path: &Path, e: std::io::Error) -> RuleErrors {
        RuleErrors {
            origin: path.display().to_string(),
            errors: vec![RuleError { line: 0, column: 0, message: format!("cannot read the rule file: {e}") }],
        }
    }
}

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if e.line == 0 {
                write!(f, "{}: {}", self.origin, e.message)?;
            } else {
                write!(f, "{}:{}:{}: {}", self.origin, e.line, e.column, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

/// Collects errors with positions while walking the raw file.
struct Checker<'a> {
    text: &'a str,
    errors: Vec<RuleError>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(RuleError { line, column, message: message.into() });
    }

    /// Expands `${VAR}` and `${VAR:-default}` in a string value.
    fn expand(&mut self, v: &Spanned<String>, field: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
        match expand_env(v.get_ref(), env) {
            Ok(s) => s,
            Err(var) => {
                self.at(
                    v.span(),
                    format!("`{field}` names the environment variable {var}, which is not set (write ${{{var}:-default}} to give a default)"),
                );
                String::new()
            }
        }
    }

    fn port(&mut self, p: &Spanned<RawPort>, env: &dyn Fn(&str) -> Option<String>) -> u16 {
        match p.get_ref() {
            RawPort::Number(n) => *n,
            RawPort::Text(t) => match expand_env(t, env) {
                Ok(s) => match s.trim().parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        self.at(p.span(), format!("`port` must be a number from 1 to 65535, not `{s}`"));
                        0
                    }
                },
                Err(var) => {
                    self.at(p.span(), format!("`port` names the environment variable {var}, which is not set"));
                    0
                }
            },
        }
    }
}

/// Expands `${VAR}` / `${VAR:-default}`; the error is the unset variable's name.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match env(name).filter(|v| !v.is_empty()).or(default.map(str::to_string)) {
            Some(v) => out.push_str(&v),
            None => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    let p = parse_timestamp(s)?;
    (p.time == chrono::NaiveTime::MIN && p.offset_seconds.is_none()).then_some(p.date)
}

fn time_bound(s: &str, ty: KeyType) -> Option<i64> {
    let p = parse_timestamp(s)?;
    if p.offset_seconds.is_some() && ty != KeyType::Timestamptz {
        return None;
    }
    let local = datetime_to_micros(p.date.and_time(p.time));
    Some(local - i64::from(p.offset_seconds.unwrap_or(0)) * 1_000_000)
}

pub(super) fn validate(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Rules, RuleErrors> {
    let fail = |errors| Err(RuleErrors { origin: origin.to_string(), errors });
    let raw: RawRules = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let mut c = Checker { text, errors: Vec::new() };
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => c.at(span, message),
                None => c.errors.push(RuleError { line: 0, column: 0, message }),
            }
            return fail(c.errors);
        }
    };
    let mut c = Checker { text, errors: Vec::new() };
    let backend = *raw.backend.get_ref();

    // Shards.
    let mut shards: Vec<Shard> = Vec::new();
    let mut shard_ids: HashMap<String, ShardId> = HashMap::new();
    if raw.shards.is_empty() {
        c.at(raw.backend.span(), "the rule file declares no [[shard]]");
    }
    if raw.shards.len() > MAX_SHARDS {
        c.at(raw.shards[MAX_SHARDS].span(), format!("at most {MAX_SHARDS} shards are supported"));
    }
    for (i, rs) in raw.shards.iter().enumerate().take(MAX_SHARDS) {
        let s = rs.get_ref();
        let name = s.name.get_ref().clone();
        if !is_identifier(&name) {
            c.at(s.name.span(), format!("shard name `{name}` must be letters, digits, `_` or `-`"));
        }
        let id = ShardId(i as u16);
        if shard_ids.insert(name.clone(), id).is_some() {
            c.at(s.name.span(), format!("shard `{name}` is declared twice"));
        }
        let password = match (&s.password, &s.password_env) {
            (Some(_), Some(pe)) => {
                c.at(pe.span(), "give either `password` or `password_env`, not both");
                None
            }
            (Some(p), None) => Some(c.expand(p, "password", env)),
            // An unset variable is a deployment matter, not a rule error:
            // `check` must pass on committed files. The shard will refuse
            // the login and say so.
            (None, Some(pe)) => env(pe.get_ref()),
            (None, None) => None,
        };
        let mut slices = Vec::new();
        for sl in s.slices.iter().flatten() {
            match sl.get_ref().parse::<Slice>() {
                Ok(v) => slices.push(v),
                Err(e) => c.at(sl.span(), format!("slice `{}` of shard {name}: {e}", sl.get_ref())),
            }
        }
        let replicas = s
            .replicas
            .iter()
            .map(|r| Endpoint { host: c.expand(&r.get_ref().host, "host", env), port: c.port(&r.get_ref().port, env) })
            .collect();
        shards.push(Shard {
            id,
            name,
            endpoint: Endpoint { host: c.expand(&s.host, "host", env), port: c.port(&s.port, env) },
            database: c.expand(&s.database, "database", env),
            user: c.expand(&s.user, "user", env),
            password,
            replicas,
            slices,
        });
    }

    // The hash ring: declared slices, or equal slices over all shards.
    let declared = raw.shards.iter().any(|s| s.get_ref().slices.is_some());
    if !declared {
        let n = shards.len();
        for (i, s) in shards.iter_mut().enumerate() {
            s.slices = vec![Slice::equal_part(i, n)];
        }
    }
    let pairs: Vec<(Slice, ShardId)> = shards.iter().flat_map(|s| s.slices.iter().map(move |sl| (*sl, s.id))).collect();
    let uses_hash = raw.keyspaces.values().any(|k| *k.get_ref().algorithm.get_ref() == Algorithm::Hash);
    if uses_hash && !shards.is_empty() {
        let named: Vec<(Slice, String)> = pairs.iter().map(|(sl, id)| (*sl, shards[id.index()].name.clone())).collect();
        let span = raw.shards.iter().find(|s| s.get_ref().slices.is_some()).map_or(0..0, |s| s.span());
        for problem in check_cover(&named) {
            c.at(span.clone(), format!("hash slices: {problem}"));
        }
    }
    let ring = HashRing::new(if pairs.is_empty() { vec![(Slice::FULL, ShardId(0))] } else { pairs });

    let known_shards = shards.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    let lookup_shard = |c: &mut Checker, s: &Spanned<String>, what: &str| -> Option<ShardId> {
        let id = shard_ids.get(s.get_ref()).copied();
        if id.is_none() {
            c.at(
                s.span(),
                format!("{what} names shard `{}`, which is not declared (shards: {known_shards})", s.get_ref()),
            );
        }
        id
    };

    // Keyspaces.
    let mut keyspaces: Vec<Keyspace> = Vec::new();
    let mut keyspace_ids: HashMap<String, usize> = HashMap::new();
    for (name, rk) in &raw.keyspaces {
        let k = rk.get_ref();
        let key_type = *k.key_type.get_ref();
        let algorithm = *k.algorithm.get_ref();
        let collation = match (&k.text_collation, key_type) {
            (Some(tc), KeyType::Text) => *tc.get_ref(),
            (Some(tc), _) => {
                c.at(tc.span(), format!("keyspace {name}: `text_collation` applies to text keys only"));
                TextCollation::Exact
            }
            (None, _) => TextCollation::default_for(backend),
        };
        let placement = match algorithm {
            Algorithm::Hash => {
                if let Some(r) = &k.ranges {
                    c.at(
                        r.first().map_or(rk.span(), |r| r.span()),
                        format!("keyspace {name}: `ranges` belong to time_range keyspaces"),
                    );
                }
                if let Some(g) = &k.generate {
                    c.at(g.span(), format!("keyspace {name}: `generate` belongs to time_range keyspaces"));
                }
                Placement::Hash
            }
            Algorithm::TimeRange => {
                if !key_type.is_temporal() {
                    c.at(
                        k.key_type.span(),
                        format!(
                            "keyspace {name}: time_range needs a date, timestamp or timestamptz key, not {key_type}"
                        ),
                    );
                }
                let mut ranges = Vec::new();
                match (&k.ranges, &k.generate) {
                    (Some(_), Some(g)) => {
                        c.at(g.span(), format!("keyspace {name}: give `ranges` or `generate`, not both"))
                    }
                    (None, None) => {
                        c.at(rk.span(), format!("keyspace {name}: a time_range keyspace needs `ranges` or `generate`"))
                    }
                    (Some(rs), None) => {
                        for r in rs {
                            let rr = r.get_ref();
                            let mut bound = |b: &Option<Spanned<String>>, field: &str| -> Option<i64> {
                                let b = b.as_ref()?;
                                let v = time_bound(b.get_ref(), key_type);
                                if v.is_none() {
                                    c.at(
                                        b.span(),
                                        format!(
                                            "keyspace {name}: `{field}` = `{}` is not a YYYY-MM-DD[ HH:MM:SS] time",
                                            b.get_ref()
                                        ),
                                    );
                                }
                                v
                            };
                            let from = bound(&rr.from, "from");
                            let to = bound(&rr.to, "to");
                            if let (Some(f), Some(t)) = (from, to)
                                && f >= t
                            {
                                c.at(r.span(), format!("keyspace {name}: range `from` must be before `to`"));
                            }
                            if let Some(shard) = lookup_shard(&mut c, &rr.shard, &format!("keyspace {name}: a range")) {
                                ranges.push((TimeRange { from, to, shard }, r.span()));
                            }
                        }
                    }
                    (None, Some(g)) => {
                        let gr = g.get_ref();
                        let start = parse_day(gr.start.get_ref());
                        let end = parse_day(gr.end.get_ref());
                        if start.is_none() {
                            c.at(gr.start.span(), format!("keyspace {name}: `start` must be a YYYY-MM-DD date"));
                        }
                        if end.is_none() {
                            c.at(gr.end.span(), format!("keyspace {name}: `end` must be a YYYY-MM-DD date"));
                        }
                        let mut ids = Vec::new();
                        for s in gr.shards.get_ref() {
                            match shard_ids.get(s) {
                                Some(id) => ids.push(*id),
                                None => c.at(
                                    gr.shards.span(),
                                    format!("keyspace {name}: `shards` names `{s}`, which is not declared"),
                                ),
                            }
                        }
                        if let (Some(start), Some(end)) = (start, end) {
                            match generate(start, end, *gr.interval.get_ref(), &ids, gr.open_start, gr.open_end) {
                                Ok(gen_ranges) => ranges.extend(gen_ranges.into_iter().map(|r| (r, g.span()))),
                                Err(e) => c.at(g.span(), format!("keyspace {name}: {e}")),
                            }
                        }
                    }
                }
                let spans: Vec<Range<usize>> = ranges.iter().map(|(_, s)| s.clone()).collect();
                let unsorted = TimeRanges::new(ranges.iter().map(|(r, _)| r.clone()).collect());
                for (i, j) in unsorted.overlaps() {
                    // Report at the span of a range that overlaps (positions
                    // are of the sorted list; find the original by value).
                    let a = &unsorted.ranges()[i];
                    let b = &unsorted.ranges()[j];
                    let span = ranges.iter().position(|(r, _)| r == b).map_or(rk.span(), |p| spans[p].clone());
                    c.at(
                        span,
                        format!(
                            "keyspace {name}: time ranges overlap (shards {} and {})",
                            shard_name(&shards, a.shard),
                            shard_name(&shards, b.shard)
                        ),
                    );
                }
                Placement::TimeRange(unsorted)
            }
        };
        keyspace_ids.insert(name.clone(), keyspaces.len());
        keyspaces.push(Keyspace { name: name.clone(), key_type, collation, placement });
    }

    // Tables.
    let mut tables: Vec<TableRule> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for rt in &raw.tables {
        let t = rt.get_ref();
        let name = t.name.get_ref().trim().to_lowercase();
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            c.at(t.name.span(), format!("table name `{}` must be `table` or `schema.table`", t.name.get_ref()));
        }
        if !seen.insert(name.clone()) {
            c.at(t.name.span(), format!("table `{name}` is listed twice"));
        }
        let kinds = usize::from(t.keyspace.is_some() || t.key.is_some())
            + usize::from(t.reference)
            + usize::from(t.shard.is_some());
        if kinds != 1 {
            c.at(
                rt.span(),
                format!("table `{name}` must be exactly one of: sharded (`keyspace` and `key`), `reference = true`, or pinned (`shard`)"),
            );
            continue;
        }
        let placement = if t.reference {
            TablePlacement::Reference
        } else if let Some(s) = &t.shard {
            match lookup_shard(&mut c, s, &format!("table `{name}`")) {
                Some(id) => TablePlacement::Pinned(id),
                None => continue,
            }
        } else {
            let (Some(ks), Some(key)) = (&t.keyspace, &t.key) else {
                c.at(rt.span(), format!("table `{name}`: a sharded table needs both `keyspace` and `key`"));
                continue;
            };
            let Some(&ki) = keyspace_ids.get(ks.get_ref()) else {
                let known: Vec<&str> = keyspace_ids.keys().map(String::as_str).collect();
                c.at(
                    ks.span(),
                    format!(
                        "table `{name}` names keyspace `{}`, which is not declared (keyspaces: {})",
                        ks.get_ref(),
                        known.join(", ")
                    ),
                );
                continue;
            };
            let key = key.get_ref().trim().to_lowercase();
            if key.is_empty() {
                c.at(t.key.as_ref().map_or(rt.span(), |k| k.span()), format!("table `{name}`: `key` is empty"));
            }
            TablePlacement::Sharded { keyspace: ki, key }
        };
        tables.push(TableRule {
            name,
            placement,
            generated_id: t.generated_id.as_ref().map(|g| g.get_ref().trim().to_lowercase()),
        });
    }

    let default_shard = raw.default_shard.as_ref().and_then(|d| lookup_shard(&mut c, d, "`default_shard`"));
    let policy = Policy { allow_scatter_writes: raw.policy.allow_scatter_writes };

    if !c.errors.is_empty() {
        return fail(c.errors);
    }
    let mut rules = Rules {
        backend,
        shards,
        keyspaces,
        tables,
        by_name: HashMap::new(),
        default_shard,
        policy,
        examples: Vec::new(),
        ring,
    };
    rules.index_tables();

    // Examples, checked against the assembled rules.
    let mut examples = Vec::new();
    for re in &raw.examples {
        let e = re.get_ref();
        let tname = e.table.get_ref().trim().to_lowercase();
        let (schema, bare) = match tname.split_once('.') {
            Some((s, n)) => (Some(s), n),
            None => (None, tname.as_str()),
        };
        let Some(table) = rules.table(schema, bare).cloned() else {
            c.at(e.table.span(), format!("example names table `{tname}`, which has no rule"));
            continue;
        };
        let Some(expected) = lookup_shard(&mut c, &e.shard, "example") else {
            continue;
        };
        let key_text = match e.key.get_ref() {
            RawExampleKey::Integer(v) => v.to_string(),
            RawExampleKey::Text(s) => s.clone(),
        };
        let lit = match e.key.get_ref() {
            RawExampleKey::Integer(v) => Literal::Int(*v),
            RawExampleKey::Text(s) => Literal::String(s),
        };
        let line = {
            let before = &text[..re.span().start.min(text.len())];
            before.matches('\n').count() + 1
        };
        match rules.locate(&table, lit) {
            Ok(KeyPlacement::Shard(actual)) if actual == expected => {
                examples.push(Example { table: tname.clone(), key: key_text, shard: expected, line });
            }
            Ok(KeyPlacement::Shard(actual)) => c.at(
                e.key.span(),
                format!(
                    "example: key {key_text} of {tname} lives on {}, not on {}",
                    rules.shard(actual).name,
                    rules.shard(expected).name
                ),
            ),
            Ok(_) => c.at(e.key.span(), format!("example: key {key_text} of {tname} has no shard")),
            Err(err) => c.at(e.key.span(), format!("example: {err}")),
        }
    }
    if !c.errors.is_empty() {
        return fail(c.errors);
    }
    rules.examples = examples;
    Ok(rules)
}

fn shard_name(shards: &[Shard], id: ShardId) -> &str {
    shards.get(id.index()).map_or("?", |s| s.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
backend = "postgres"

[[shard]]
name = "s0"
host = "127.0.0.1"
port = 5432
database = "db"
user = "u"

[[shard]]
name = "s1"
host = "127.0.0.1"
port = "${S1_PORT:-5433}"
database = "db"
user = "u"
password = "pw"

[keyspace.user]
algorithm = "hash"
key_type = "integer"

[[table]]
name = "users"
keyspace = "user"
key = "id"
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn errors(text: &str) -> Vec<String> {
        match Rules::parse_with_env(text, "r.toml", &no_env) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_string).collect(),
        }
    }

    #[test]
    fn base_file_is_valid() {
        let r = Rules::parse_with_env(BASE, "r.toml", &no_env).unwrap();
        assert_eq!(r.shards.len(), 2);
        assert_eq!(r.shards[1].endpoint.port, 5433);
        assert_eq!(r.shards[0].slices, vec!["-80".parse().unwrap()]);
        assert!(r.table(None, "users").is_some());
        assert!(r.table(Some("public"), "users").is_some());
        assert!(r.table(Some("other"), "users").is_none());
    }

    #[test]
    fn env_expansion() {
        let env = |n: &str| (n == "S1_PORT").then(|| "7000".to_string());
        let r = Rules::parse_with_env(BASE, "r.toml", &env).unwrap();
        assert_eq!(r.shards[1].endpoint.port, 7000);
        assert_eq!(expand_env("a${X}b", &|_| Some("1".into())).unwrap(), "a1b");
        assert_eq!(expand_env("${X}", &no_env), Err("X".to_string()));
    }

    #[test]
    fn misspelled_key_names_line_and_field() {
        let text = BASE.replace("key_type = \"integer\"", "key_typ = \"integer\"");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("r.toml:"), "{errs:?}");
        assert!(errs[0].contains("key_typ"), "{errs:?}");
    }

    #[test]
    fn every_semantic_error_is_reported() {
        let text = format!(
            "{BASE}
[[table]]
name = \"users\"
reference = true

[[table]]
name = \"orders\"
keyspace = \"nope\"
key = \"user_id\"

[[table]]
name = \"audit\"
shard = \"s9\"

[keyspace.ev]
algorithm = \"time_range\"
key_type = \"integer\"
ranges = [{{ to = \"2024-01-01\", shard = \"s0\" }}, {{ from = \"2023-06-01\", shard = \"s1\" }}]
"
        );
        let errs = errors(&text);
        let joined = errs.join("\n");
        assert!(joined.contains("listed twice"), "{joined}");
        assert!(joined.contains("keyspace `nope`"), "{joined}");
        assert!(joined.contains("shard `s9`"), "{joined}");
        assert!(joined.contains("time_range needs a date"), "{joined}");
        assert!(joined.contains("overlap"), "{joined}");
        assert!(errs.iter().all(|e| e.starts_with("r.toml:")), "{joined}");
        // Each error points at its own line.
        let line_of =
            |needle: &str| errs.iter().find(|e| e.contains(needle)).unwrap().split(':').nth(1).unwrap().to_string();
        assert_ne!(line_of("listed twice"), line_of("shard `s9`"));
    }

    #[test]
    fn slices_must_cover_the_keyspace() {
        let text = BASE
            .replace("user = \"u\"\n\n[[shard]]", "user = \"u\"\nslices = [\"-40\"]\n\n[[shard]]")
            .replace("password = \"pw\"", "password = \"pw\"\nslices = [\"80-\"]");
        let errs = errors(&text);
        assert!(errs.iter().any(|e| e.contains("40-80 are owned by no shard")), "{errs:?}");
    }

    #[test]
    fn examples_are_verified() {
        let r = Rules::parse_with_env(BASE, "r.toml", &no_env).unwrap();
        let users = r.table(None, "users").unwrap().clone();
        let KeyPlacement::Shard(owner) = r.locate(&users, Literal::Int(42)).unwrap() else { panic!() };
        let wrong = if owner.0 == 0 { "s1" } else { "s0" };
        let right = &r.shard(owner).name;
        let ok = format!("{BASE}\n[[example]]\ntable = \"users\"\nkey = 42\nshard = \"{right}\"\n");
        assert!(errors(&ok).is_empty(), "{:?}", errors(&ok));
        let bad = format!("{BASE}\n[[example]]\ntable = \"users\"\nkey = \"42\"\nshard = \"{wrong}\"\n");
        let errs = errors(&bad);
        assert!(errs[0].contains(&format!("lives on {right}, not on {wrong}")), "{errs:?}");
    }

    #[test]
    fn generated_time_ranges() {
        let text = format!(
            "{BASE}
[keyspace.ev]
algorithm = \"time_range\"
key_type = \"timestamp\"
generate = {{ interval = \"month\", start = \"2024-01-01\", end = \"2025-01-01\", shards = [\"s0\", \"s1\"], open_end = true }}

[[table]]
name = \"events\"
keyspace = \"ev\"
key = \"at\"

[[example]]
table = \"events\"
key = \"2024-02-10\"
shard = \"s1\"

[[example]]
table = \"events\"
key = \"2030-02-10\"
shard = \"s1\"
"
        );
        let r = Rules::parse_with_env(&text, "r.toml", &no_env).unwrap();
        assert_eq!(r.examples.len(), 2);
        let missing = text.replace("key = \"2030-02-10\"", "key = \"2023-02-10\"");
        assert!(errors(&missing).iter().any(|e| e.contains("has no shard")));
    }

    #[test]
    fn committed_rule_files_pass() {
        for f in ["rules/demo-postgres.toml", "rules/demo-mysql.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{f}: {e}"));
            if let Err(e) = Rules::parse_with_env(&text, f, &no_env) {
                panic!("{e}");
            }
        }
    }
}
