//! Empty non-terminals: names that exist only because names below them do (`demo.svc`,
//! the labels between a reverse name and its zone). Several Services share them, so each
//! is counted and goes when its last name does.

use crate::controller::Controller;
use crate::dns::name::RelativeName;
use crate::store::{self, Route, ZoneKind};

impl Controller {
    /// One more name below `name`, and with `ancestors` below each of its ancestors short
    /// of the apex too.
    pub(super) fn ent_ref(&mut self, kind: ZoneKind, name: &RelativeName, ancestors: bool) {
        let mut current = Some(name.clone());
        while let Some(n) = current.filter(|n| !n.is_apex()) {
            let key = store::key(kind, &n);
            if self.static_keys.contains(&key) {
                // A zone's apex or fixed name: it exists whatever is below it.
                current = if ancestors { n.parent() } else { None };
                continue;
            }
            let count = self.ent_refs.entry(key.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                self.store.set_route(&key, Route::EmptyNonTerminal);
            }
            current = if ancestors { n.parent() } else { None };
        }
    }

    pub(super) fn ent_unref(&mut self, kind: ZoneKind, name: &RelativeName, ancestors: bool) {
        let mut current = Some(name.clone());
        while let Some(n) = current.filter(|n| !n.is_apex()) {
            let key = store::key(kind, &n);
            if let Some(count) = self.ent_refs.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.ent_refs.remove(&key);
                    self.store.remove(&key);
                }
            }
            current = if ancestors { n.parent() } else { None };
        }
    }
}
