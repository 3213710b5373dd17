//! The SIM's message store (`"SM"`): numbered slots from 1, each a PDU in
//! hex as the modem read it off the air (SCA first) and its `<stat>`; and
//! the messages the network holds back while every slot is taken.

use std::collections::VecDeque;

/// `<stat>` of 27.005 in PDU mode.
pub(super) const UNREAD: u8 = 0;
pub(super) const READ: u8 = 1;

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slot {
    /// 0 received unread, 1 received read, 2 stored unsent, 3 stored sent.
    pub stat: u8,
    /// SCA and TPDU in hex.
    pub hex: String,
}

/// Where a new message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placed {
    /// Stored at this index.
    Stored(usize),
    /// Every slot is taken: held back until one frees.
    Held,
}

#[derive(Debug)]
pub(super) struct Storage {
    slots: Vec<Option<Slot>>,
    held: VecDeque<Slot>,
}

impl Storage {
    pub fn new(capacity: usize) -> Self {
        Storage {
            slots: vec![None; capacity],
            held: VecDeque::new(),
        }
    }

    pub fn total(&self) -> usize {
        self.slots.len()
    }

    pub fn used(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// In the first free slot; held back (behind any already held, so the
    /// order of arrival is kept) when there is none.
    pub fn place(&mut self, slot: Slot) -> Placed {
        if self.held.is_empty() {
            if let Some((i, free)) = self.slots.iter_mut().enumerate().find(|(_, s)| s.is_none()) {
                *free = Some(slot);
                return Placed::Stored(i + 1);
            }
        }
        self.held.push_back(slot);
        Placed::Held
    }

    /// Held messages moved into the slots that freed up; their indexes.
    pub fn release_held(&mut self) -> Vec<usize> {
        let mut stored = Vec::new();
        while let Some(free) = self.slots.iter().position(Option::is_none) {
            let Some(slot) = self.held.pop_front() else {
                break;
            };
            if let Some(s) = self.slots.get_mut(free) {
                *s = Some(slot);
            }
            stored.push(free + 1);
        }
        stored
    }

    /// Whether `index` names a slot (empty or not).
    pub fn valid(&self, index: usize) -> bool {
        (1..=self.slots.len()).contains(&index)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut Slot> {
        self.slots.get_mut(index.checked_sub(1)?)?.as_mut()
    }

    pub fn delete(&mut self, index: usize) {
        if let Some(slot) = index.checked_sub(1).and_then(|i| self.slots.get_mut(i)) {
            *slot = None;
        }
    }

    /// `AT+CMGD=<i>,<flag>` for flag 1–4: the read messages; and the sent;
    /// and the unsent; everything.
    pub fn delete_flagged(&mut self, flag: u8) {
        for slot in &mut self.slots {
            let stat = slot.as_ref().map_or(UNREAD, |s| s.stat);
            let goes = match flag {
                1 => stat == READ,
                2 => stat == READ || stat == 3,
                3 => stat != UNREAD,
                _ => true,
            };
            if goes {
                *slot = None;
            }
        }
    }

    /// Every stored message with `stat` (`None`: all), by index.
    pub fn list(&self, stat: Option<u8>) -> Vec<(usize, Slot)> {
        let slots = self.slots.iter().enumerate();
        let stored = slots.filter_map(|(i, s)| Some((i + 1, s.clone()?)));
        stored
            .filter(|(_, s)| stat.is_none_or(|st| s.stat == st))
            .collect()
    }

    /// Marks the messages just read as read.
    pub fn mark_read(&mut self, indexes: &[usize]) {
        for &i in indexes {
            if let Some(slot) = self.get_mut(i) {
                if slot.stat == UNREAD {
                    slot.stat = READ;
                }
            }
        }
    }

    /// Fills every free slot with `slot` (a full SIM); how many it took.
    pub fn fill(&mut self, slot: &Slot) -> usize {
        let free = self.slots.iter_mut().filter(|s| s.is_none());
        free.map(|s| *s = Some(slot.clone())).count()
    }
}
