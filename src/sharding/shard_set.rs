//! A small fixed-size set of shard ids.

use std::fmt;

/// The most shards one rule file may declare.
pub const MAX_SHARDS: usize = 256;
const WORDS: usize = MAX_SHARDS / 64;

/// The index of a shard in its rule file (`s0` is usually 0, but the name is
/// what users see; the id is only an index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u16);

impl ShardId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of shards. Copy-able and allocation-free, so that predicate analysis
/// can combine sets freely on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShardSet {
    words: [u64; WORDS],
}

impl ShardSet {
    pub const fn empty() -> Self {
        ShardSet { words: [0; WORDS] }
    }

    /// The set of the first `n` shards.
    pub fn all(n: usize) -> Self {
        let mut s = Self::empty();
        for i in 0..n.min(MAX_SHARDS) {
            s.insert(ShardId(i as u16));
        }
        s
    }

    pub fn single(id: ShardId) -> Self {
        let mut s = Self::empty();
        s.insert(id);
        s
    }

    pub fn insert(&mut self, id: ShardId) {
        let i = id.index();
        self.words[i / 64] |= 1 << (i % 64);
    }

    pub fn contains(&self, id: ShardId) -> bool {
        let i = id.index();
        i < MAX_SHARDS && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    pub fn union(&self, other: &ShardSet) -> ShardSet {
        let mut words = self.words;
        for (w, o) in words.iter_mut().zip(other.words.iter()) {
            *w |= o;
        }
        ShardSet { words }
    }

    pub fn intersect(&self, other: &ShardSet) -> ShardSet {
        let mut words = self.words;
        for (w, o) in words.iter_mut().zip(other.words.iter()) {
            *w &= o;
        }
        ShardSet { words }
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// The only member, when there is exactly one.
    pub fn only(&self) -> Option<ShardId> {
        if self.len() == 1 { self.iter().next() } else { None }
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut bits = w;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(ShardId((wi * 64 + b) as u16))
            })
        })
    }
}

impl fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|s| s.0)).finish()
    }
}

impl FromIterator<ShardId> for ShardSet {
    fn from_iter<T: IntoIterator<Item = ShardId>>(iter: T) -> Self {
        let mut s = ShardSet::empty();
        for id in iter {
            s.insert(id);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let a: ShardSet = [0, 3, 64, 200].into_iter().map(ShardId).collect();
        let b: ShardSet = [3, 200, 255].into_iter().map(ShardId).collect();
        assert_eq!(a.len(), 4);
        assert_eq!(a.intersect(&b).iter().map(|s| s.0).collect::<Vec<_>>(), vec![3, 200]);
        assert_eq!(a.union(&b).len(), 5);
        assert_eq!(ShardSet::single(ShardId(7)).only(), Some(ShardId(7)));
        assert_eq!(a.only(), None);
        assert!(ShardSet::empty().is_empty());
        assert_eq!(ShardSet::all(3).iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
