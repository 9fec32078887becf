//! From an [`Analysis`] to the shards a statement must reach.
//!
//! Prepare time ([`Routing::new`]) settles everything that does not depend
//! on parameter values: which instances are co-located, whether the
//! statement could run on several shards at all. Bind time
//! ([`Routing::decide`]) evaluates the key predicates with the parameters.

use std::ops::Bound;

use crate::rules::{KeyPlacement, Placement, Rules};
use crate::sharding::key::{Canonical, KeyContext, canonicalize};
use crate::sharding::{Literal, ShardId, ShardSet};

use super::Param;
use super::analyze::{Analysis, InstKind, KeyPred, ScopeKind, ValueRef};
use super::error::RouteError;
use super::plan::Reason;

/// A sharded instance, as routing sees it.
#[derive(Debug, Clone)]
pub struct RInst {
    pub table: String,
    pub key: String,
    pub keyspace: usize,
    pub pred: KeyPred,
    /// Instances joined on the key in the same scope share a class.
    pub class: usize,
    /// The instance of an enclosing scope this one is correlated with.
    pub correlated: Option<usize>,
    /// The predicate on the key as text (`id IN (1, $2)`), for EXPLAIN ROUTE.
    pub pred_text: Option<std::sync::Arc<str>>,
}

/// The routing facts of one statement.
#[derive(Debug, Clone)]
pub struct Routing {
    pub insts: Vec<RInst>,
    /// A pinned table's (or the default shard's) shard, with the table.
    pub fixed: Option<(ShardId, String, bool)>,
    /// The first reference table read, if any.
    pub reference: Option<String>,
    /// Whether the statement may run on several shards; the error says why not.
    pub multi: Result<(), RouteError>,
}

/// Where a statement goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    One(ShardId, Reason),
    Many(ShardSet, Reason),
}

fn find(parent: &mut [usize], x: usize) -> usize {
    let mut r = x;
    while parent[r] != r {
        r = parent[r];
    }
    let mut y = x;
    while parent[y] != r {
        let next = parent[y];
        parent[y] = r;
        y = next;
    }
    r
}

fn is_ancestor(a: &Analysis, anc: usize, mut s: usize) -> bool {
    while let Some(p) = a.scopes[s].parent {
        if p == anc {
            return true;
        }
        s = p;
    }
    false
}

impl Routing {
    pub fn new(a: &Analysis) -> Result<Routing, RouteError> {
        // Pinned and default-shard tables must all be on one shard.
        let mut fixed: Option<(ShardId, String, bool)> = None;
        for inst in &a.instances {
            let (shard, default) = match inst.kind {
                InstKind::Pinned(s) => (s, false),
                InstKind::Default(s) => (s, true),
                _ => continue,
            };
            match &fixed {
                None => fixed = Some((shard, inst.table.clone(), default)),
                Some((s, t, _)) if *s != shard => {
                    return Err(RouteError::CrossShardJoin {
                        detail: format!("{t} and {} live whole on different shards", inst.table),
                    });
                }
                _ => {}
            }
        }
        let reference = a.instances.iter().find(|i| i.kind == InstKind::Reference).map(|i| i.table.clone());

        // Classes of instances linked on the key within a scope.
        let n = a.instances.len();
        let mut parent: Vec<usize> = (0..n).collect();
        for &(x, y) in &a.scope_links {
            let (rx, ry) = (find(&mut parent, x), find(&mut parent, y));
            parent[rx] = ry;
        }
        // Correlation: an inner instance linked to an instance of an enclosing scope.
        let mut correlated: Vec<Option<usize>> = vec![None; n];
        for &(x, y) in &a.outer_links {
            let (sx, sy) = (a.instances[x].scope, a.instances[y].scope);
            if is_ancestor(a, sy, sx) {
                correlated[x] = correlated[x].or(Some(y));
            } else if is_ancestor(a, sx, sy) {
                correlated[y] = correlated[y].or(Some(x));
            }
        }
        // Renumber sharded instances densely.
        let sharded: Vec<usize> = a.sharded().map(|(i, _)| i).collect();
        let dense = |i: usize| sharded.iter().position(|&s| s == i);
        let mut insts = Vec::new();
        for &i in &sharded {
            let InstKind::Sharded { keyspace, key } = &a.instances[i].kind else {
                continue;
            };
            insts.push(RInst {
                table: a.instances[i].table.clone(),
                key: key.clone(),
                keyspace: *keyspace,
                pred: a.preds[i].clone(),
                class: find(&mut parent, i),
                correlated: correlated[i].and_then(dense),
                pred_text: pred_text(&a.preds[i], &format!("{}.{key}", a.instances[i].binding)).map(Into::into),
            });
        }
        let multi = Self::multi_shard_check(a, &sharded, &fixed, &mut parent);
        Ok(Routing { insts, fixed, reference, multi })
    }

    /// Whether the statement, sent whole to several shards, gives the answer
    /// one database would.
    fn multi_shard_check(
        a: &Analysis,
        sharded: &[usize],
        fixed: &Option<(ShardId, String, bool)>,
        parent: &mut [usize],
    ) -> Result<(), RouteError> {
        let Some(&first) = sharded.first() else {
            return Ok(());
        };
        let first_inst = &a.instances[first];
        if let Some((_, t, _)) = fixed {
            return Err(RouteError::CrossShardJoin {
                detail: format!("{t} lives whole on one shard, {} is spread over several", first_inst.table),
            });
        }
        // Everything must be one class of the same keyspace once correlations count.
        for &(x, y) in &a.outer_links {
            let (rx, ry) = (find(parent, x), find(parent, y));
            parent[rx] = ry;
        }
        // Subqueries over sharded tables must be correlated on the key and
        // must not reduce (each shard would compute its own answer).
        for &i in sharded {
            let inst = &a.instances[i];
            let mut s = inst.scope;
            loop {
                let scope = &a.scopes[s];
                match scope.kind {
                    ScopeKind::Top => break,
                    ScopeKind::Derived => {
                        return Err(RouteError::Subquery {
                            detail: format!("a derived table (subquery in FROM) reads sharded table {}", inst.table),
                        });
                    }
                    ScopeKind::Cte => {
                        return Err(RouteError::Subquery {
                            detail: format!("a WITH query reads sharded table {}", inst.table),
                        });
                    }
                    ScopeKind::SetOperand => {
                        return Err(RouteError::Unmergeable {
                            construct: "UNION / INTERSECT / EXCEPT".into(),
                            why: "each shard would combine only its own rows",
                        });
                    }
                    ScopeKind::Expr => {
                        if scope.reduces {
                            return Err(RouteError::Subquery {
                                detail: format!(
                                    "a subquery reading {} aggregates, limits or de-duplicates; each shard would compute its own answer",
                                    inst.table
                                ),
                            });
                        }
                    }
                }
                match scope.parent {
                    Some(p) => s = p,
                    None => break,
                }
            }
            if a.scopes[inst.scope].kind == ScopeKind::Expr && !a.outer_links.iter().any(|&(x, y)| x == i || y == i) {
                return Err(RouteError::Subquery {
                    detail: format!(
                        "a subquery reads sharded table {} without being correlated on its sharding key",
                        inst.table
                    ),
                });
            }
        }
        let root = find(parent, first);
        for &i in &sharded[1..] {
            let inst = &a.instances[i];
            if inst.kind_keyspace() != first_inst.kind_keyspace() {
                return Err(RouteError::CrossShardJoin {
                    detail: format!(
                        "{} and {} are sharded in different keyspaces; only tables of one keyspace joined on their keys meet on one shard",
                        first_inst.table, inst.table
                    ),
                });
            }
            if find(parent, i) != root {
                return Err(RouteError::CrossShardJoin {
                    detail: format!(
                        "{} and {} are not joined on their sharding keys, so their rows may meet only across shards",
                        first_inst.table, inst.table
                    ),
                });
            }
        }
        // Outer joins: a reference table may only be the side that comes back NULL.
        for oj in &a.outer_joins {
            let sides: &[(&Vec<usize>, &Vec<usize>)] = if oj.full {
                &[(&oj.preserved, &oj.nullable), (&oj.nullable, &oj.preserved)]
            } else {
                &[(&oj.preserved, &oj.nullable)]
            };
            for (kept, other) in sides {
                let reference = kept.iter().find(|&&i| a.instances[i].kind == InstKind::Reference);
                let spread = other.iter().find(|&&i| matches!(a.instances[i].kind, InstKind::Sharded { .. }));
                if let (Some(&r), Some(&s)) = (reference, spread) {
                    return Err(RouteError::CrossShardJoin {
                        detail: format!(
                            "reference table {} is the preserved side of an outer join with sharded table {}; every shard would return its unmatched rows",
                            a.instances[r].table, a.instances[s].table
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Decides the shards with the parameters bound.
    pub fn decide(
        &self,
        rules: &Rules,
        params: &[Param],
        kcx: &KeyContext,
        pinned: Option<ShardId>,
    ) -> Result<Decision, RouteError> {
        if self.insts.is_empty() {
            return Ok(match &self.fixed {
                Some((s, t, true)) => Decision::One(*s, Reason::DefaultShard { table: t.clone() }),
                Some((s, t, false)) => Decision::One(*s, Reason::Pinned { table: t.clone() }),
                None => {
                    let shard = pinned.unwrap_or(ShardId(0));
                    let reason = match (&self.reference, pinned) {
                        (_, Some(_)) => Reason::Transaction,
                        (Some(t), None) => Reason::ReferenceRead { table: t.clone() },
                        (None, None) => Reason::AnyShard,
                    };
                    Decision::One(shard, reason)
                }
            });
        }
        // Each instance's own set, then the classes' intersections.
        let mut own = Vec::with_capacity(self.insts.len());
        for inst in &self.insts {
            let ks = rules.keyspace(inst.keyspace);
            let all = ks.shards(&rules.ring);
            own.push(eval_pred(&inst.pred, rules, inst.keyspace, params, kcx)?.map_or(all, |s| s.intersect(&all)));
        }
        let mut class_sets: Vec<(usize, ShardSet)> = Vec::new();
        for (inst, set) in self.insts.iter().zip(&own) {
            match class_sets.iter_mut().find(|(c, _)| *c == inst.class) {
                Some((_, s)) => *s = s.intersect(set),
                None => class_sets.push((inst.class, *set)),
            }
        }
        let class_set = |c: usize| class_sets.iter().find(|(k, _)| *k == c).map_or(ShardSet::empty(), |(_, s)| *s);
        let mut needed: Vec<ShardSet> = self.insts.iter().map(|i| class_set(i.class)).collect();
        for (i, inst) in self.insts.iter().enumerate() {
            if let Some(j) = inst.correlated {
                needed[i] = needed[i].intersect(&needed[j]);
            }
        }
        let union = needed.iter().fold(ShardSet::empty(), |acc, s| acc.union(s));
        let first = &self.insts[0];
        if let Some((s, t, _)) = &self.fixed {
            if union.iter().all(|u| u == *s) {
                return Ok(Decision::One(*s, Reason::Pinned { table: t.clone() }));
            }
            return Err(RouteError::CrossShardJoin {
                detail: format!("{t} lives whole on one shard, {} is spread over several", first.table),
            });
        }
        match union.len() {
            0 => {
                let any = rules.keyspace(first.keyspace).shards(&rules.ring).iter().next().unwrap_or(ShardId(0));
                Ok(Decision::One(any, Reason::NoKey { table: first.table.clone() }))
            }
            1 => {
                let s = union.only().unwrap_or(ShardId(0));
                let all = rules.keyspace(first.keyspace).shards(&rules.ring);
                Ok(Decision::One(s, if union == all { self.scatter_reason() } else { self.predicate_reason() }))
            }
            _ => {
                self.multi.clone()?;
                let all = rules.keyspace(first.keyspace).shards(&rules.ring);
                Ok(Decision::Many(union, if union == all { self.scatter_reason() } else { self.predicate_reason() }))
            }
        }
    }
}

impl Routing {
    /// Why a narrowed statement goes where it goes: the first key predicate.
    fn predicate_reason(&self) -> Reason {
        let inst = self.insts.iter().find(|i| i.pred_text.is_some()).unwrap_or(&self.insts[0]);
        match &inst.pred_text {
            Some(p) => Reason::Predicate { table: inst.table.clone(), predicate: p.clone() },
            None => Reason::Key { table: inst.table.clone(), key: inst.key.clone() },
        }
    }

    /// Every shard of the keyspace: either nothing narrowed it, or what did
    /// still allows every shard.
    fn scatter_reason(&self) -> Reason {
        match self.insts.iter().find(|i| i.pred_text.is_some()) {
            Some(i) => Reason::Predicate {
                table: i.table.clone(),
                predicate: format!("{} (allows every shard)", i.pred_text.as_deref().unwrap_or("")).into(),
            },
            None => Reason::Scatter { table: self.insts[0].table.clone() },
        }
    }
}

/// A key predicate as text; `None` when it says nothing.
fn pred_text(p: &KeyPred, key: &str) -> Option<String> {
    let v = |v: &ValueRef| match v {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Number(n) => n.clone(),
        ValueRef::String(s) => format!("'{}'", s.replace('\'', "''")),
        ValueRef::Bool(b) => b.to_string(),
        ValueRef::Param(i) => format!("${}", i + 1),
    };
    match p {
        KeyPred::All => None,
        KeyPred::In(vs) if vs.len() == 1 => Some(format!("{key} = {}", v(&vs[0]))),
        KeyPred::In(vs) => Some(format!("{key} IN ({})", vs.iter().map(v).collect::<Vec<_>>().join(", "))),
        KeyPred::Range { lo, hi } => {
            let mut parts = Vec::new();
            if let Some((x, inc)) = lo {
                parts.push(format!("{key} {} {}", if *inc { ">=" } else { ">" }, v(x)));
            }
            if let Some((x, inc)) = hi {
                parts.push(format!("{key} {} {}", if *inc { "<=" } else { "<" }, v(x)));
            }
            Some(parts.join(" AND "))
        }
        KeyPred::And(ps) => {
            let parts: Vec<String> = ps.iter().filter_map(|p| pred_text(p, key)).collect();
            (!parts.is_empty()).then(|| parts.join(" AND "))
        }
        KeyPred::Or(ps) => {
            let parts: Option<Vec<String>> = ps.iter().map(|p| pred_text(p, key)).collect();
            parts.map(|p| format!("({})", p.join(" OR ")))
        }
    }
}

impl super::analyze::Instance {
    fn kind_keyspace(&self) -> Option<usize> {
        match self.kind {
            InstKind::Sharded { keyspace, .. } => Some(keyspace),
            _ => None,
        }
    }
}

/// A bound value as a literal.
pub fn literal<'a>(v: &'a ValueRef, params: &'a [Param]) -> Result<Literal<'a>, RouteError> {
    Ok(match v {
        ValueRef::Null => Literal::Null,
        ValueRef::Number(n) => Literal::Number(n),
        ValueRef::String(s) => Literal::String(s),
        ValueRef::Bool(b) => Literal::Bool(*b),
        ValueRef::Param(i) => match params.get(*i) {
            Some(p) => p.literal(),
            None => {
                return Err(RouteError::MissingParameter { index: i + 1, given: params.len() });
            }
        },
    })
}

/// The shards a predicate allows; `None` when it does not narrow the keyspace.
fn eval_pred(
    p: &KeyPred,
    rules: &Rules,
    keyspace: usize,
    params: &[Param],
    kcx: &KeyContext,
) -> Result<Option<ShardSet>, RouteError> {
    let ks = rules.keyspace(keyspace);
    Ok(match p {
        KeyPred::All => None,
        KeyPred::In(values) => {
            let mut set = ShardSet::empty();
            for v in values {
                match ks.place(&rules.ring, literal(v, params)?, kcx) {
                    Ok((KeyPlacement::Shard(s), _)) => set.insert(s),
                    Ok((KeyPlacement::Nowhere | KeyPlacement::Uncovered, _)) => {}
                    // A spelling shardgate cannot read exactly: any shard may hold a match.
                    Err(_) => return Ok(None),
                }
            }
            Some(set)
        }
        KeyPred::Range { .. } => {
            let Placement::TimeRange(ranges) = &ks.placement else {
                return Ok(None);
            };
            time_bounds(p, rules, keyspace, params, kcx)?.map(|(l, h)| ranges.shards_meeting(l, h))
        }
        KeyPred::And(parts) => {
            // Ranges are intersected as intervals before they become shards,
            // so that `k > a AND k <= a` allows nothing rather than the
            // shards of both bounds.
            let mut flat = Vec::new();
            flatten_and(parts, &mut flat);
            let mut acc: Option<ShardSet> = None;
            let mut interval: Option<Interval> = None;
            for part in flat {
                if let (KeyPred::Range { .. }, Placement::TimeRange(_)) = (part, &ks.placement)
                    && let Some((l, h)) = time_bounds(part, rules, keyspace, params, kcx)?
                {
                    interval = Some(match interval {
                        None => (l, h),
                        Some((l0, h0)) => (tighter_lo(l0, l), tighter_hi(h0, h)),
                    });
                    continue;
                }
                if let Some(s) = eval_pred(part, rules, keyspace, params, kcx)? {
                    acc = Some(acc.map_or(s, |a| a.intersect(&s)));
                }
            }
            if let (Some((l, h)), Placement::TimeRange(ranges)) = (interval, &ks.placement) {
                let s = ranges.shards_meeting(l, h);
                acc = Some(acc.map_or(s, |a| a.intersect(&s)));
            }
            acc
        }
        KeyPred::Or(parts) => {
            let mut acc = ShardSet::empty();
            for part in parts {
                match eval_pred(part, rules, keyspace, params, kcx)? {
                    Some(s) => acc = acc.union(&s),
                    None => return Ok(None),
                }
            }
            Some(acc)
        }
    })
}

/// A time interval: lower and upper bound, in microseconds.
type Interval = (Bound<i64>, Bound<i64>);

fn flatten_and<'a>(parts: &'a [KeyPred], out: &mut Vec<&'a KeyPred>) {
    for p in parts {
        match p {
            KeyPred::And(inner) => flatten_and(inner, out),
            other => out.push(other),
        }
    }
}

/// The interval of a range predicate on a time keyspace; `None` when a bound
/// cannot be read exactly.
fn time_bounds(
    p: &KeyPred,
    rules: &Rules,
    keyspace: usize,
    params: &[Param],
    kcx: &KeyContext,
) -> Result<Option<Interval>, RouteError> {
    let KeyPred::Range { lo, hi } = p else {
        return Ok(None);
    };
    let ks = rules.keyspace(keyspace);
    let cx = KeyContext { collation: ks.collation, ..*kcx };
    let bound = |b: &Option<(ValueRef, bool)>| -> Result<Option<Bound<i64>>, RouteError> {
        let Some((v, inclusive)) = b else {
            return Ok(Some(Bound::Unbounded));
        };
        Ok(match canonicalize(ks.key_type, literal(v, params)?, &cx) {
            Ok(Canonical::Value(kv)) => {
                kv.time_point().map(|t| if *inclusive { Bound::Included(t) } else { Bound::Excluded(t) })
            }
            _ => None,
        })
    };
    Ok(match (bound(lo)?, bound(hi)?) {
        (Some(l), Some(h)) => Some((l, h)),
        _ => None,
    })
}

/// The larger of two lower bounds.
fn tighter_lo(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    let key = |x: &Bound<i64>| match x {
        Bound::Unbounded => (i64::MIN, 0),
        Bound::Included(v) => (*v, 1),
        Bound::Excluded(v) => (*v, 2),
    };
    if key(&a) >= key(&b) { a } else { b }
}

/// The smaller of two upper bounds.
fn tighter_hi(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    let key = |x: &Bound<i64>| match x {
        Bound::Unbounded => (i64::MAX, 2),
        Bound::Included(v) => (*v, 1),
        Bound::Excluded(v) => (*v, 0),
    };
    if key(&a) <= key(&b) { a } else { b }
}
