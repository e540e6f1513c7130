//! A set of slab slots, one bit each: which connections are marked for something this
//! reactor does to them later (flush at the end of the turn, read again once their
//! worker catches up). Kept beside the slab rather than as flags in every entry, where
//! they would widen each idle connection's slab entry by a word.

/// Slots as bits. It grows to the highest slot marked, one bit per slot: the slab's
/// slots are bounded by `max_connections`.
#[derive(Default)]
pub(crate) struct SlotSet {
    words: Vec<u64>,
}

impl SlotSet {
    /// Marks `slot`; true if it was not marked.
    pub(crate) fn insert(&mut self, slot: usize) -> bool {
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was = self.words[word] & bit != 0;
        self.words[word] |= bit;
        !was
    }

    /// Unmarks `slot`; true if it was marked.
    pub(crate) fn remove(&mut self, slot: usize) -> bool {
        let bit = 1u64 << (slot % 64);
        match self.words.get_mut(slot / 64) {
            Some(word) if *word & bit != 0 => {
                *word &= !bit;
                true
            }
            _ => false,
        }
    }

    /// Whether `slot` is marked.
    pub(crate) fn contains(&self, slot: usize) -> bool {
        self.words.get(slot / 64).is_some_and(|word| word & (1u64 << (slot % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::SlotSet;

    #[test]
    fn marks_are_per_slot_and_report_changes() {
        let mut set = SlotSet::default();
        assert!(!set.contains(5));
        assert!(!set.remove(5), "nothing to unmark in an empty set");
        assert!(set.insert(5));
        assert!(!set.insert(5), "already marked");
        assert!(set.insert(64 * 3 + 1));
        assert!(set.contains(5) && set.contains(193));
        assert!(!set.contains(4) && !set.contains(6) && !set.contains(192));
        assert!(set.remove(5));
        assert!(!set.contains(5) && set.contains(193));
        assert_eq!(set.words.len(), 4, "grown to the highest slot marked, no further");
    }
}
