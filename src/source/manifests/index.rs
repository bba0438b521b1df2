//! Which manifest file defines which object, kept for the life of the process.
//!
//! The manifests folder must know, when a file changes or goes, which objects that file
//! defined, and when two files define one object, which one wins. It keeps an entry per
//! object, so the entry is a per-endpoint cost at a few pods per Service: here it is the
//! object's key and a 4-byte file number, in one map per kind. The files that define an
//! object and do not win are kept apart; there are none unless definitions conflict.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::hash::FastHash;
use crate::model::{Kind, ObjectKey};

/// A file's number while it is known; reused once the file is gone.
pub type FileId = u32;

/// What [`DefinitionIndex::define`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Defined {
    /// The file now wins the object: its definition is the one to apply.
    pub wins: bool,
    /// The first and the last (winning) file, when several define the object.
    pub conflict: Option<(Arc<Path>, Arc<Path>)>,
}

/// What [`DefinitionIndex::undefine`] left.
#[derive(Debug, PartialEq, Eq)]
pub enum Undefined {
    /// No file defines the object any more.
    Gone,
    /// The file was the winner; this file defines the object and wins now.
    NewWinner(Arc<Path>),
    /// The winner did not change.
    Unchanged,
}

#[derive(Debug, Default)]
pub struct DefinitionIndex {
    /// The path of each file number; `None` for a free number.
    paths: Vec<Option<Arc<Path>>>,
    free: Vec<FileId>,
    /// The winning file of each object, one map per kind (`kind as usize`), so the kind
    /// is not stored per object.
    winners: [HashMap<ObjectKey, FileId, FastHash>; Kind::ALL.len()],
    /// The other files that define an object, in path order.
    shadowed: HashMap<(Kind, ObjectKey), Vec<FileId>, FastHash>,
}

impl DefinitionIndex {
    /// A number for `path`, which defines nothing yet.
    pub fn add_file(&mut self, path: Arc<Path>) -> FileId {
        match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.paths.get_mut(id as usize) {
                    *slot = Some(path);
                }
                id
            }
            None => {
                self.paths.push(Some(path));
                // More than four billion manifest files cannot be listed in the first place.
                FileId::try_from(self.paths.len() - 1).unwrap_or(FileId::MAX)
            }
        }
    }

    /// Frees `id`, once every object it defined is undefined.
    pub fn remove_file(&mut self, id: FileId) {
        if let Some(slot) = self.paths.get_mut(id as usize)
            && slot.take().is_some()
        {
            self.free.push(id);
        }
    }

    /// File `id` defines `key`. Of several files, the last in path order wins.
    pub fn define(&mut self, kind: Kind, key: ObjectKey, id: FileId) -> Defined {
        let paths = &self.paths;
        let path = |id: FileId| paths.get(id as usize).and_then(Option::as_ref);
        let winners = &mut self.winners[kind as usize];
        let Some(winner) = winners.get_mut(&key) else {
            winners.insert(key, id);
            return Defined {
                wins: true,
                conflict: None,
            };
        };
        let current = *winner;
        if current == id {
            // Its winning file again: a conflict only if other files define it too.
            let first = self.shadowed.get(&(kind, key)).and_then(|o| o.first());
            let conflict = first.and_then(|first| Some((path(*first)?.clone(), path(id)?.clone())));
            return Defined {
                wins: true,
                conflict,
            };
        }
        // Two files define it: the later in path order wins, the other is shadowed.
        let (wins, loser) = if path(id) > path(current) {
            *winner = id;
            (true, current)
        } else {
            (false, id)
        };
        let last = path(*winner).cloned();
        let others = self.shadowed.entry((kind, key)).or_default();
        if let Err(at) = others.binary_search_by(|other| path(*other).cmp(&path(loser))) {
            others.insert(at, loser);
        }
        let first = others.first().and_then(|first| path(*first)).cloned();
        Defined {
            wins,
            conflict: first.zip(last),
        }
    }

    /// File `id` no longer defines `key`.
    pub fn undefine(&mut self, kind: Kind, key: &ObjectKey, id: FileId) -> Undefined {
        let winners = &mut self.winners[kind as usize];
        let Some(&winner) = winners.get(key) else {
            return Undefined::Unchanged;
        };
        let shadowed_key = (kind, key.clone());
        let Some(others) = self.shadowed.get_mut(&shadowed_key) else {
            if winner != id {
                return Undefined::Unchanged;
            }
            winners.remove(key);
            return Undefined::Gone;
        };
        let result = if winner == id {
            // The last in path order takes over.
            let next = others
                .pop()
                .and_then(|next| Some((next, self.paths.get(next as usize)?.clone()?)));
            match next {
                Some((next, path)) => {
                    winners.insert(key.clone(), next);
                    Undefined::NewWinner(path)
                }
                None => {
                    winners.remove(key);
                    Undefined::Gone
                }
            }
        } else {
            others.retain(|other| *other != id);
            Undefined::Unchanged
        };
        if others.is_empty() {
            self.shadowed.remove(&shadowed_key);
        }
        result
    }

    /// The objects file `id` defines, winning or not: a walk over every object, done only
    /// when a known file changes or goes.
    pub fn keys_of(&self, id: FileId) -> Vec<(Kind, ObjectKey)> {
        let mut keys: Vec<(Kind, ObjectKey)> = Kind::ALL
            .into_iter()
            .flat_map(|kind| {
                self.winners[kind as usize]
                    .iter()
                    .filter(move |(_, winner)| **winner == id)
                    .map(move |(key, _)| (kind, key.clone()))
            })
            .collect();
        keys.extend(
            self.shadowed
                .iter()
                .filter(|(_, others)| others.contains(&id))
                .map(|(key, _)| key.clone()),
        );
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Arc<Path> {
        Path::new(p).into()
    }

    #[test]
    fn the_last_file_in_path_order_wins_and_the_next_takes_over() {
        let mut index = DefinitionIndex::default();
        let [a, b, c] = ["a.yaml", "b.yaml", "c.yaml"].map(|p| index.add_file(path(p)));
        let web = ObjectKey::new("demo", "web");
        let define = |index: &mut DefinitionIndex, id| index.define(Kind::Service, web.clone(), id);
        assert_eq!(
            define(&mut index, b),
            Defined {
                wins: true,
                conflict: None
            }
        );
        // An earlier file does not win; a later one does. Both conflicts name the first
        // and the winning file.
        let conflict = Some((path("a.yaml"), path("b.yaml")));
        assert_eq!(
            define(&mut index, a),
            Defined {
                wins: false,
                conflict
            }
        );
        let conflict = Some((path("a.yaml"), path("c.yaml")));
        assert_eq!(
            define(&mut index, c),
            Defined {
                wins: true,
                conflict: conflict.clone()
            }
        );
        assert_eq!(
            define(&mut index, c),
            Defined {
                wins: true,
                conflict
            }
        );
        // The same key of another kind is another object.
        assert!(index.define(Kind::StatefulSet, web.clone(), a).wins);
        let mut keys = index.keys_of(a);
        keys.sort();
        assert_eq!(
            keys,
            [
                (Kind::Service, web.clone()),
                (Kind::StatefulSet, web.clone())
            ]
        );
        // A shadowed file letting go changes nothing; the winner letting go hands over to
        // the last one left; the last one letting go deletes.
        assert_eq!(index.undefine(Kind::Service, &web, a), Undefined::Unchanged);
        assert_eq!(
            index.undefine(Kind::Service, &web, c),
            Undefined::NewWinner(path("b.yaml"))
        );
        assert_eq!(index.keys_of(b), [(Kind::Service, web.clone())]);
        assert!(index.shadowed.is_empty());
        assert_eq!(index.undefine(Kind::Service, &web, b), Undefined::Gone);
        assert_eq!(index.undefine(Kind::Service, &web, b), Undefined::Unchanged);
        assert_eq!(index.keys_of(a), [(Kind::StatefulSet, web.clone())]);
        // A removed file's number is reused.
        index.remove_file(c);
        assert_eq!(index.add_file(path("d.yaml")), c);
    }
}
