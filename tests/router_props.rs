//! Property tests of the router against brute-force placement.

use std::sync::Arc;

use proptest::prelude::*;
use shardgate::route::{Param, Plan, RouteContext, Router};
use shardgate::rules::Rules;
use shardgate::sharding::idgen::IdGenerator;
use shardgate::sharding::key::{KeyContext, canonicalize};
use shardgate::sharding::{Canonical, KeyType, KeyspaceId, Literal, ShardId, TextCollation};

const SHARDS: usize = 5;

fn rules_text(years: &[i32]) -> String {
    let mut t = String::from("backend = \"postgres\"\n");
    for i in 0..SHARDS {
        t.push_str(&format!(
            "[[shard]]\nname = \"s{i}\"\nhost = \"h\"\nport = {}\ndatabase = \"d\"\nuser = \"u\"\n",
            1000 + i
        ));
    }
    for (name, ty) in [("ki", "integer"), ("kt", "text"), ("ku", "uuid"), ("kd", "date"), ("ks", "timestamp")] {
        t.push_str(&format!("[keyspace.{name}]\nalgorithm = \"hash\"\nkey_type = \"{ty}\"\n"));
    }
    // Time ranges: one per consecutive pair of years, round robin, open at both ends.
    t.push_str("[keyspace.tr]\nalgorithm = \"time_range\"\nkey_type = \"timestamp\"\nranges = [\n");
    for (i, w) in years.windows(2).enumerate() {
        let from = if i == 0 { String::new() } else { format!("from = \"{}-01-01\", ", w[0]) };
        let to = if i + 2 == years.len() { String::new() } else { format!("to = \"{}-01-01\", ", w[1]) };
        t.push_str(&format!("  {{ {from}{to}shard = \"s{}\" }},\n", i % SHARDS));
    }
    t.push_str("]\n");
    for (table, ks) in [("ti", "ki"), ("tt", "kt"), ("tu", "ku"), ("td", "kd"), ("ts", "ks"), ("ev", "tr")] {
        t.push_str(&format!("[[table]]\nname = \"{table}\"\nkeyspace = \"{ks}\"\nkey = \"k\"\n"));
    }
    t
}

fn router(years: &[i32]) -> Router {
    let rules = Rules::parse_with_env(&rules_text(years), "props.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    Router::new(Arc::new(rules), Arc::new(IdGenerator::new(3).unwrap()))
}

/// The owner of a key by linear search over the shards' slices.
fn brute_owner(r: &Router, ty: KeyType, lit: Literal<'_>) -> ShardId {
    let cx = KeyContext::new(r.rules().backend, TextCollation::Exact);
    let Ok(Canonical::Value(v)) = canonicalize(ty, lit, &cx) else { panic!("not a key: {lit:?}") };
    let id = KeyspaceId::of(&v);
    r.rules().shards.iter().find(|s| s.slices.iter().any(|sl| sl.contains(id))).map(|s| s.id).unwrap()
}

fn route(r: &Router, sql: &str, params: &[Param]) -> Plan {
    let mut plans = r.route(sql, &RouteContext::new(params)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(plans.len(), 1);
    plans.remove(0)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn key_strategy() -> impl Strategy<Value = (KeyType, String)> {
    prop_oneof![
        any::<i64>().prop_map(|v| (KeyType::Integer, v.to_string())),
        "[a-zA-Z0-9 _'-]{0,12}".prop_map(|s| (KeyType::Text, s)),
        any::<u128>().prop_map(|v| (KeyType::Uuid, uuid::Uuid::from_u128(v).to_string())),
        (1900i32..2100, 1u32..13, 1u32..29).prop_map(|(y, m, d)| (KeyType::Date, format!("{y:04}-{m:02}-{d:02}"))),
        (1900i32..2100, 1u32..13, 1u32..29, 0u32..24, 0u32..60, 0u32..1_000_000).prop_map(|(y, mo, d, h, mi, us)| (
            KeyType::Timestamp,
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:00.{us:06}")
        )),
    ]
}

fn table_of(ty: KeyType) -> &'static str {
    match ty {
        KeyType::Integer => "ti",
        KeyType::Text => "tt",
        KeyType::Uuid => "tu",
        KeyType::Date => "td",
        _ => "ts",
    }
}

fn date_to_micros(y: i32) -> i64 {
    let d = chrono::NaiveDate::from_ymd_opt(y, 1, 1).unwrap();
    (d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp()) * 1_000_000
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// `WHERE key = k` goes to exactly the shard that owns k, literal or parameter.
    #[test]
    fn point_lookups_reach_the_owner((ty, key) in key_strategy()) {
        let r = router(&[2000, 2010, 2020]);
        let table = table_of(ty);
        let lit = if ty == KeyType::Integer { key.clone() } else { quote(&key) };
        let want = brute_owner(&r, ty, Literal::String(&key));
        let p = route(&r, &format!("SELECT * FROM {table} WHERE k = {lit}"), &[]);
        prop_assert_eq!(p.targets.iter().map(|t| t.shard).collect::<Vec<_>>(), vec![want]);
        let p = route(&r, &format!("SELECT * FROM {table} WHERE k = $1"), &[Param::Text(key.clone())]);
        prop_assert_eq!(p.targets.iter().map(|t| t.shard).collect::<Vec<_>>(), vec![want]);
    }

    /// An IN list is split so that every key reaches its owner exactly once.
    #[test]
    fn in_lists_deliver_each_key_once(keys in proptest::collection::btree_set(any::<i64>(), 1..60)) {
        let r = router(&[2000, 2010]);
        let keys: Vec<i64> = keys.into_iter().collect();
        let params: Vec<Param> = keys.iter().map(|k| Param::Int(*k)).collect();
        let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let p = route(&r, &format!("SELECT * FROM ti WHERE k IN ({})", placeholders.join(", ")), &params);
        let mut delivered = Vec::new();
        for t in &p.targets {
            let taken: Vec<usize> = match &t.params {
                Some(map) => map.clone(),
                None => (0..keys.len()).collect(),
            };
            for i in taken {
                prop_assert_eq!(brute_owner(&r, KeyType::Integer, Literal::Int(keys[i])), t.shard);
                delivered.push(keys[i]);
            }
        }
        delivered.sort();
        prop_assert_eq!(delivered, keys);
    }

    /// Time-range pruning keeps exactly the shards whose ranges meet the predicate.
    #[test]
    fn time_pruning_never_drops_a_shard(
        cuts in proptest::collection::btree_set(1950i32..2050, 2..12),
        lo in 1940i32..2060, span in 0i32..40, lo_incl in any::<bool>(), hi_incl in any::<bool>(),
    ) {
        let years: Vec<i32> = cuts.into_iter().collect();
        let r = router(&years);
        let hi = lo + span;
        let (lo_op, hi_op) = (if lo_incl { ">=" } else { ">" }, if hi_incl { "<=" } else { "<" });
        let sql = format!("SELECT * FROM ev WHERE k {lo_op} '{lo}-01-01' AND k {hi_op} '{hi}-01-01'");
        let p = route(&r, &sql, &[]);
        let got: std::collections::BTreeSet<ShardId> = p.targets.iter().map(|t| t.shard).collect();
        // Brute force: a range [from, to) meets the predicate when some
        // microsecond t satisfies both.
        let (plo, phi) = (date_to_micros(lo) + i64::from(!lo_incl), date_to_micros(hi) - i64::from(!hi_incl));
        let mut want = std::collections::BTreeSet::new();
        for (i, w) in years.windows(2).enumerate() {
            let from = if i == 0 { i64::MIN } else { date_to_micros(w[0]) };
            let to = if i + 2 == years.len() { i64::MAX } else { date_to_micros(w[1]) - 1 };
            if plo <= phi && from.max(plo) <= to.min(phi) {
                want.insert(ShardId((i % SHARDS) as u16));
            }
        }
        if want.is_empty() {
            prop_assert_eq!(got.len(), 1, "an empty answer comes from one shard");
        } else {
            prop_assert!(want.is_subset(&got), "{sql}: dropped {:?}", want.difference(&got).collect::<Vec<_>>());
            prop_assert_eq!(got, want);
        }
    }

    /// A multi-row INSERT keeps every row exactly once, on its owner.
    #[test]
    fn insert_split_keeps_every_row(keys in proptest::collection::vec(any::<i64>(), 1..80)) {
        let r = router(&[2000, 2010]);
        let values: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("({k}, 'row{i}')")).collect();
        let p = route(&r, &format!("INSERT INTO ti (k, v) VALUES {}", values.join(", ")), &[]);
        let mut rows = Vec::new();
        for t in &p.targets {
            match &t.rows {
                Some(list) => {
                    for &i in list {
                        prop_assert_eq!(brute_owner(&r, KeyType::Integer, Literal::Int(keys[i])), t.shard);
                        let needle = format!("'row{i}')");
                        prop_assert!(t.sql.contains(&needle), "row {} missing from {}", i, t.sql);
                        rows.push(i);
                    }
                }
                None => rows.extend(0..keys.len()),
            }
            let count = t.sql.matches("'row").count();
            prop_assert_eq!(count, t.rows.as_ref().map_or(keys.len(), Vec::len));
        }
        rows.sort();
        prop_assert_eq!(rows, (0..keys.len()).collect::<Vec<_>>());
    }
}
