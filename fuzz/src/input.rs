//! Shared helpers for turning fuzzer bytes into a target's settings.

/// Splits `n` settings bytes off the front of `data`; `None` when it is shorter.
pub(crate) fn settings<const N: usize>(data: &[u8]) -> Option<(&[u8; N], &[u8])> {
    data.split_first_chunk::<N>()
}

/// `table[index % len]`: a setting from a byte, every byte value meaning something.
pub(crate) fn pick<T: Copy>(table: &[T], index: u8) -> T {
    table[usize::from(index) % table.len()]
}

/// A tiny deterministic generator (xorshift64*), so one input always replays the same way.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        // Xorshift must not start at zero; the odd constant keeps every seed distinct.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `1..=max` (`max` at least 1).
    pub(crate) fn size(&mut self, max: usize) -> usize {
        let max = max.max(1) as u64;
        usize::try_from(self.next() % max).unwrap_or(0) + 1
    }
}

/// A 64-bit FNV-1a digest, to compare what two runs produced without keeping it.
pub(crate) struct Digest(u64);

impl Digest {
    pub(crate) fn new() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A tagged, length-prefixed field, so that different splits never hash alike.
    pub(crate) fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.bytes(&[tag]);
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }

    pub(crate) fn value(&self) -> u64 {
        self.0
    }
}
