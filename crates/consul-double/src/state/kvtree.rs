//! The shape of Consul's KV index, kept only to decide which blocking KV reads a write wakes.
//!
//! Consul stores KV entries in go-memdb, whose `id` index is a go-immutable-radix tree of the
//! keys, each with a NUL appended. A read registers one watch channel of that tree and is re-run
//! only when the channel is closed:
//!
//! * a key that exists: the channel of its leaf, closed only when that key is written or deleted;
//! * a key that does not exist: the channel of the deepest node the lookup reached, closed by any
//!   write whose path goes through that node. With `app/flags/a` and `other/x` stored, a read of
//!   the missing `app/flags/b` watches the `app/flags/` node and sleeps through a write to
//!   `other/y`; with nothing left under `app/`, it watches the root, which every write changes
//!   (transcript 12, steps 19 and 27);
//! * a prefix (`?recurse`, `?keys`): the node that covers the prefix, or, when no key has it, the
//!   deepest node on its path.
//!
//! A write copies every node on its path and closes the old copies' channels (and a replaced or
//! removed leaf's); a split closes the node it splits, a merge the child it absorbs. This module
//! replays those rules on a mutable tree: each node and leaf carries a channel number, and every
//! operation returns the numbers it closed.

use std::collections::HashSet;

/// A watch channel: a node's or a leaf's identity until the next write that replaces it.
pub(crate) type Channel = u64;

#[derive(Debug)]
struct Node {
    ch: Channel,
    prefix: Vec<u8>,
    leaf: Option<Channel>,
    /// Children by first byte of their prefix, sorted.
    edges: Vec<(u8, Node)>,
}

impl Node {
    fn edge(&self, label: u8) -> Option<usize> {
        self.edges.binary_search_by_key(&label, |(l, _)| *l).ok()
    }

    fn add_edge(&mut self, label: u8, node: Node) {
        let at = self
            .edges
            .binary_search_by_key(&label, |(l, _)| *l)
            .unwrap_or_else(|i| i);
        self.edges.insert(at, (label, node));
    }
}

/// The tree plus the channel counter.
#[derive(Debug)]
pub(crate) struct KvTree {
    root: Node,
    next: Channel,
}

/// One write: the channels it closed and the nodes it already copied (a node copied once in a
/// transaction is not closed again).
struct Txn<'a> {
    next: &'a mut Channel,
    closed: Vec<Channel>,
    written: HashSet<Channel>,
}

impl Txn<'_> {
    fn fresh(&mut self) -> Channel {
        *self.next += 1;
        self.written.insert(*self.next);
        *self.next
    }

    /// iradix's `writeNode`: the node gets a new identity; its old channel (and its leaf's, for
    /// a leaf update) closes.
    fn write_node(&mut self, n: &mut Node, for_leaf: bool) {
        if self.written.contains(&n.ch) {
            return;
        }
        self.closed.push(n.ch);
        if for_leaf && let Some(leaf) = n.leaf {
            self.closed.push(leaf);
        }
        n.ch = self.fresh();
    }

    /// iradix's `mergeChild`: `n` absorbs its only child, whose node channel closes.
    fn merge_child(&mut self, n: &mut Node) {
        let (_, child) = n.edges.remove(0);
        self.closed.push(child.ch);
        n.prefix.extend_from_slice(&child.prefix);
        n.leaf = child.leaf;
        n.edges = child.edges;
    }

    fn insert(&mut self, n: &mut Node, search: &[u8]) {
        if search.is_empty() {
            self.write_node(n, true);
            n.leaf = Some(self.fresh());
            return;
        }
        let Some(i) = n.edge(search[0]) else {
            let node = Node {
                ch: self.fresh(),
                prefix: search.to_vec(),
                leaf: Some(self.fresh()),
                edges: Vec::new(),
            };
            self.write_node(n, false);
            n.add_edge(search[0], node);
            return;
        };
        let common = common_prefix(search, &n.edges[i].1.prefix);
        if common == n.edges[i].1.prefix.len() {
            self.insert(&mut n.edges[i].1, &search[common..]);
            self.write_node(n, false);
            return;
        }
        // Split the child at the common prefix.
        self.write_node(n, false);
        let (label, mut child) = n.edges.remove(i);
        self.write_node(&mut child, false);
        let mut split = Node {
            ch: self.fresh(),
            prefix: search[..common].to_vec(),
            leaf: None,
            edges: Vec::new(),
        };
        child.prefix.drain(..common);
        split.add_edge(child.prefix[0], child);
        let rest = &search[common..];
        if rest.is_empty() {
            split.leaf = Some(self.fresh());
        } else {
            let leaf = Node {
                ch: self.fresh(),
                prefix: rest.to_vec(),
                leaf: Some(self.fresh()),
                edges: Vec::new(),
            };
            split.add_edge(rest[0], leaf);
        }
        n.add_edge(label, split);
    }

    /// True when something was deleted.
    fn delete(&mut self, n: &mut Node, search: &[u8], is_root: bool) -> bool {
        if search.is_empty() {
            if n.leaf.is_none() {
                return false;
            }
            self.write_node(n, true);
            n.leaf = None;
            if !is_root && n.edges.len() == 1 {
                self.merge_child(n);
            }
            return true;
        }
        let Some(i) = n.edge(search[0]) else {
            return false;
        };
        let child_len = n.edges[i].1.prefix.len();
        if !search.starts_with(&n.edges[i].1.prefix) {
            return false;
        }
        if !self.delete(&mut n.edges[i].1, &search[child_len..], false) {
            return false;
        }
        self.write_node(n, false);
        self.prune(n, i, is_root);
        true
    }

    /// True when something was deleted.
    fn delete_prefix(&mut self, n: &mut Node, search: &[u8], is_root: bool) -> bool {
        if search.is_empty() {
            self.write_node(n, true);
            n.leaf = None;
            for (_, child) in std::mem::take(&mut n.edges) {
                self.close_subtree(&child);
            }
            return true;
        }
        let Some(i) = n.edge(search[0]) else {
            return false;
        };
        let child_prefix = &n.edges[i].1.prefix;
        if !child_prefix.starts_with(search) && !search.starts_with(child_prefix) {
            return false;
        }
        let rest = if child_prefix.len() > search.len() {
            &[][..]
        } else {
            &search[child_prefix.len()..]
        };
        if !self.delete_prefix(&mut n.edges[i].1, rest, false) {
            return false;
        }
        self.write_node(n, false);
        self.prune(n, i, is_root);
        true
    }

    /// After a deletion below edge `i`: drop the child if it is now empty, and merge `n` with its
    /// last child if that leaves it a mere pass-through.
    fn prune(&mut self, n: &mut Node, i: usize, is_root: bool) {
        let child = &n.edges[i].1;
        if child.leaf.is_none() && child.edges.is_empty() {
            n.edges.remove(i);
            if !is_root && n.edges.len() == 1 && n.leaf.is_none() {
                self.merge_child(n);
            }
        }
    }

    fn close_subtree(&mut self, n: &Node) {
        self.closed.push(n.ch);
        if let Some(leaf) = n.leaf {
            self.closed.push(leaf);
        }
        for (_, child) in &n.edges {
            self.close_subtree(child);
        }
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// memdb's `StringFieldIndex` key: the string and a NUL.
fn index_key(key: &str) -> Vec<u8> {
    let mut k = key.as_bytes().to_vec();
    k.push(0);
    k
}

impl Default for KvTree {
    fn default() -> Self {
        KvTree {
            root: Node {
                ch: 1,
                prefix: Vec::new(),
                leaf: None,
                edges: Vec::new(),
            },
            next: 1,
        }
    }
}

impl KvTree {
    fn txn<R>(&mut self, f: impl FnOnce(&mut Txn<'_>, &mut Node) -> R) -> (R, Vec<Channel>) {
        let mut txn = Txn {
            next: &mut self.next,
            closed: Vec::new(),
            written: HashSet::new(),
        };
        let r = f(&mut txn, &mut self.root);
        (r, txn.closed)
    }

    /// A PUT of `key` (new or replaced); returns the channels it closed.
    pub(crate) fn insert(&mut self, key: &str) -> Vec<Channel> {
        let k = index_key(key);
        self.txn(|t, root| t.insert(root, &k)).1
    }

    /// A DELETE of `key`; returns the channels it closed (none if the key was absent).
    pub(crate) fn delete(&mut self, key: &str) -> Vec<Channel> {
        let k = index_key(key);
        self.txn(|t, root| t.delete(root, &k, true)).1
    }

    /// A DELETE `?recurse` of `prefix`; returns the channels it closed.
    pub(crate) fn delete_prefix(&mut self, prefix: &str) -> Vec<Channel> {
        let p = prefix.as_bytes().to_vec();
        self.txn(|t, root| t.delete_prefix(root, &p, true)).1
    }

    /// The channel a read of one key watches (iradix `GetWatch`).
    pub(crate) fn key_watch(&self, key: &str) -> Channel {
        let k = index_key(key);
        let mut n = &self.root;
        let mut watch = n.ch;
        let mut search = &k[..];
        loop {
            if search.is_empty() {
                return n.leaf.unwrap_or(watch);
            }
            let Some(i) = n.edge(search[0]) else {
                return watch;
            };
            n = &n.edges[i].1;
            // The finest node reached, even when its prefix then turns out not to match.
            watch = n.ch;
            match search.strip_prefix(&n.prefix[..]) {
                Some(rest) => search = rest,
                None => return watch,
            }
        }
    }

    /// The channel a prefix read watches (iradix `SeekPrefixWatch`).
    pub(crate) fn prefix_watch(&self, prefix: &str) -> Channel {
        let mut n = &self.root;
        let mut watch = n.ch;
        let mut search = prefix.as_bytes();
        loop {
            if search.is_empty() {
                return watch;
            }
            let Some(i) = n.edge(search[0]) else {
                return watch;
            };
            n = &n.edges[i].1;
            watch = n.ch;
            if let Some(rest) = search.strip_prefix(&n.prefix[..]) {
                search = rest;
            } else {
                return watch;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(keys: &[&str]) -> KvTree {
        let mut t = KvTree::default();
        for k in keys {
            t.insert(k);
        }
        t
    }

    #[test]
    fn a_key_read_is_closed_only_by_writes_to_that_key() {
        let mut t = tree(&["app/a", "app/b"]);
        let w = t.key_watch("app/a");
        assert!(!t.insert("app/b").contains(&w));
        assert!(!t.insert("app/c").contains(&w), "a sibling split elsewhere");
        assert!(t.insert("app/a").contains(&w), "a rewrite of the key");
        let w = t.key_watch("app/a");
        assert!(t.delete("app/a").contains(&w));
    }

    #[test]
    fn a_missing_key_watches_the_closest_node_of_its_path() {
        // Transcript 12: with keys left under app/flags/, a write to other/ does not wake a
        // read of a missing app/flags/ key; once app/flags/ is empty, every write does.
        let mut t = tree(&["app/flags/a", "app/flags/d", "app/flags/sub/c", "other/x"]);
        let w = t.key_watch("app/flags/missing");
        assert!(!t.insert("other/y").contains(&w));
        assert!(t.insert("app/flags/zz").contains(&w));
        t.delete_prefix("app/flags/");
        let w = t.key_watch("app/flags/a");
        assert!(t.insert("app/flags/zz").contains(&w), "the root changed");
        let w = t.key_watch("app/flags/a");
        assert!(t.insert("app/flags/a").contains(&w), "creation wakes it");
    }

    #[test]
    fn a_prefix_read_is_closed_by_writes_under_it_and_by_splits_of_its_node() {
        let mut t = tree(&["app/flags/a", "app/flags/b", "other/x"]);
        let w = t.prefix_watch("app/flags/");
        assert!(!t.insert("other/y").contains(&w), "outside the prefix");
        assert!(!t.delete("other/x").contains(&w));
        assert!(t.insert("app/flags/c").contains(&w));
        let w = t.prefix_watch("app/flags/");
        assert!(t.delete("app/flags/b").contains(&w));
        // A string prefix that ends inside a node watches that node.
        let w = t.prefix_watch("app/fl");
        assert!(t.insert("app/flags/q").contains(&w));
        // A new key that splits the node covering the prefix closes it too, as in iradix.
        let w = t.prefix_watch("app/flags/");
        assert!(t.insert("app/fz").contains(&w));
    }

    #[test]
    fn deleting_a_missing_key_closes_nothing_and_merges_close_the_absorbed_child() {
        let mut t = tree(&["a/b", "a/c"]);
        assert!(t.delete("a/zz").is_empty());
        assert!(t.delete_prefix("q/").is_empty());
        // Deleting a/b leaves the "a/" node with one child, which it absorbs.
        let w = t.key_watch("a/c");
        let closed = t.delete("a/b");
        assert!(!closed.contains(&w), "the surviving leaf keeps its channel");
        assert!(t.insert("a/c").contains(&w));
    }

    #[test]
    fn delete_prefix_closes_every_channel_below_it() {
        let mut t = tree(&["p/a", "p/b/c", "q"]);
        let leaf = t.key_watch("p/b/c");
        let prefix = t.prefix_watch("p/b/");
        let outside = t.key_watch("q");
        let closed = t.delete_prefix("p/");
        assert!(closed.contains(&leaf) && closed.contains(&prefix));
        assert!(!closed.contains(&outside));
        assert_eq!(t.key_watch("p/a"), t.root.ch, "nothing left on the path");
    }
}
