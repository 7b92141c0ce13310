//! Typed extension slots (L1): state that a higher layer keeps per cluster (run-time placements,
//! two-phase commit settings and state) without the cluster naming its type — the way
//! `http::Extensions` carries per-request state for middleware.
//!
//! A slot is created on first use with the type's `Default` (or put in by the builder) and
//! lives as long as the cluster. Reading a slot takes no lock: the slots are `OnceLock`s scanned
//! by `TypeId`, a handful of comparisons.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// How many distinct types a cluster's extensions hold at most (the crate uses a few).
const SLOTS: usize = 8;

struct Slot {
    type_id: TypeId,
    value: Box<dyn Any + Send + Sync>,
}

/// A cluster's extension slots, one per type.
pub(crate) struct Extensions {
    slots: [OnceLock<Slot>; SLOTS],
    /// Serializes the creation of slots (reads never take it).
    creating: Mutex<()>,
}

impl Default for Extensions {
    fn default() -> Self {
        Extensions {
            slots: std::array::from_fn(|_| OnceLock::new()),
            creating: Mutex::new(()),
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("Extensions").field("slots", &used).finish()
    }
}

impl Extensions {
    /// The value of type `T`, if the slot exists.
    #[inline]
    pub(crate) fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let wanted = TypeId::of::<T>();
        for slot in &self.slots {
            match slot.get() {
                Some(s) if s.type_id == wanted => return s.value.downcast_ref(),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// The value of type `T`, created with `T::default()` on first use.
    #[inline]
    pub(crate) fn get_or_default<T: Any + Send + Sync + Default>(&self) -> &T {
        match self.get::<T>() {
            Some(value) => value,
            None => self.create(T::default),
        }
    }

    /// Puts `value` in `T`'s slot, replacing what it held (a builder's setting given again).
    pub(crate) fn set<T: Any + Send + Sync>(&mut self, value: T) {
        let wanted = TypeId::of::<T>();
        let slot = Slot {
            type_id: wanted,
            value: Box::new(value),
        };
        let place = self
            .slots
            .iter_mut()
            .find(|s| s.get().is_none_or(|s| s.type_id == wanted))
            .expect("grant: more extension types than Extensions::SLOTS");
        *place = OnceLock::from(slot);
    }

    #[cold]
    fn create<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> &T {
        let _creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = self.get::<T>() {
            return value;
        }
        let free = self
            .slots
            .iter()
            .find(|s| s.get().is_none())
            // The slot types are the crate's own, a fixed handful: running out is a bug here.
            .expect("grant: more extension types than Extensions::SLOTS");
        let slot = free.get_or_init(|| Slot {
            type_id: TypeId::of::<T>(),
            value: Box::new(make()),
        });
        slot.value
            .downcast_ref()
            .expect("grant: the extension slot just created holds its own type")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct A(u32);
    #[derive(Debug, Default, PartialEq)]
    struct B(&'static str);

    #[test]
    fn one_slot_per_type() {
        let mut ext = Extensions::default();
        assert!(ext.get::<A>().is_none());
        ext.set(A(7));
        assert_eq!(ext.get_or_default::<A>(), &A(7));
        assert_eq!(ext.get_or_default::<B>(), &B(""));
        assert_eq!(ext.get::<A>(), Some(&A(7)));
        assert_eq!(format!("{ext:?}"), "Extensions { slots: 2 }");
        // A setting given again replaces the first, in its slot.
        ext.set(A(9));
        ext.set(A(10));
        assert_eq!(ext.get::<A>(), Some(&A(10)));
        assert_eq!(ext.get::<B>(), Some(&B("")));
        assert_eq!(format!("{ext:?}"), "Extensions { slots: 2 }");
    }

    #[test]
    fn concurrent_first_use_makes_one_value() {
        let ext = Extensions::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    ext.get_or_default::<A>();
                });
            }
        });
        assert_eq!(ext.get::<A>(), Some(&A(0)));
        assert_eq!(ext.slots.iter().filter(|s| s.get().is_some()).count(), 1);
    }
}
