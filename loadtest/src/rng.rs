//! A cheap xorshift generator for masking keys and handshake nonces.
//!
//! Masking keys only have to be unpredictable enough that a proxy cannot be poisoned
//! (RFC 6455 §10.3); a load generator talking to a server it chose needs speed, not
//! cryptographic strength.

/// xorshift64* (Vigna): one multiply and three shifts per 64 bits.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded from `seed` mixed with the clock and the process id.
    pub fn new(seed: u64) -> XorShift {
        let mix =
            seed ^ crate::clock::now_ns().rotate_left(17) ^ (u64::from(std::process::id()) << 32);
        // splitmix64 once so that nearby seeds give unrelated streams; never zero.
        let mut z = mix.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A masking key.
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_ne_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_do_not_stick() {
        let mut a = XorShift::new(1);
        let mut b = XorShift::new(2);
        let xs: Vec<u64> = (0..64).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..64).map(|_| b.next_u64()).collect();
        assert_ne!(xs, ys);
        assert!(xs.windows(2).all(|w| w[0] != w[1]));
        let mut buf = [0u8; 13];
        a.fill(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
    }
}
