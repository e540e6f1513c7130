//! What every session of one reactor shares and that is not IO: the configuration, the
//! durations in ticks, the compression codecs, pooled write queues, and the turn's clock.

use std::sync::Arc;
use std::time::Duration;

use crate::compress::Compressor;
use crate::config::Config;
use crate::protocol::message::DecoderLimits;
use crate::session::outbound::Queue;
use crate::timer::TICK;

/// Write queues kept for reuse, and the largest kept.
const MAX_POOLED: usize = 1024;
const MAX_POOLED_QUEUE: usize = 64;

/// A reactor's session environment.
pub(crate) struct Env {
    pub(crate) config: Arc<Config>,
    pub(crate) ticks: Ticks,
    pub(crate) limits: DecoderLimits,
    pub(crate) compressor: Compressor,
    /// The tick this turn runs in: the one clock reading of the turn, used for every
    /// deadline set and every deadline checked.
    pub(crate) now: u32,
    /// Emptied write queues, lent to connections with something to write: an idle
    /// connection holds no queue, and a busy one does not allocate one per turn.
    queues: Vec<Queue>,
    /// State of the generator of client masking keys.
    mask_state: u64,
}

/// Durations in wheel ticks, computed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticks {
    pub(crate) handshake: u32,
    pub(crate) close: u32,
    pub(crate) idle: u32,
    pub(crate) ping: u32,
    pub(crate) pong: u32,
}

/// A duration in ticks, rounded up so a deadline is never early; `None` is 0 (off).
pub(crate) fn ticks_of(d: Option<Duration>) -> u32 {
    d.map_or(0, |d| {
        let ticks = d.as_millis().div_ceil(TICK.as_millis()).max(1);
        u32::try_from(ticks).unwrap_or(u32::MAX)
    })
}

/// The first tick at which `ticks` whole ticks have surely passed since an event seen in
/// tick `since`: `since + ticks + 1`. A tick is a clock reading rounded down, so the event
/// may have come at any point of tick `since`; counting from its end means a deadline
/// never fires before its duration has passed, and at most one tick (plus however late
/// the turn runs) after it. Never `since` itself, even for 0 ticks.
pub(crate) fn deadline_after(since: u32, ticks: u32) -> u32 {
    since.saturating_add(ticks).saturating_add(1)
}

impl Ticks {
    pub(crate) fn of(config: &Config) -> Ticks {
        Ticks {
            handshake: ticks_of(Some(config.handshake_timeout)),
            close: ticks_of(Some(config.close_timeout)),
            idle: ticks_of(config.idle_timeout),
            ping: ticks_of(config.ping_interval),
            pong: ticks_of(Some(config.pong_timeout)),
        }
    }
}

impl Env {
    pub(crate) fn new(config: Arc<Config>, now: u32, seed: u64) -> Env {
        Env {
            ticks: Ticks::of(&config),
            limits: DecoderLimits {
                max_message_size: config.max_message_size,
                max_frame_size: config.frame_limit(),
            },
            compressor: Compressor::new(&config),
            config,
            now,
            queues: Vec::new(),
            mask_state: seed | 1,
        }
    }

    /// The deadline `ticks` after an event of this turn: see [`deadline_after`].
    pub(crate) fn after(&self, ticks: u32) -> u32 {
        deadline_after(self.now, ticks)
    }

    /// A queue to write into, from the pool when it has one.
    pub(crate) fn lend_queue(&mut self) -> Queue {
        self.queues.pop().unwrap_or_default()
    }

    /// Takes back an emptied queue, if it is worth keeping.
    pub(crate) fn return_queue(&mut self, queue: Option<Queue>) {
        let Some(queue) = queue else { return };
        if queue.capacity() <= MAX_POOLED_QUEUE && self.queues.len() < MAX_POOLED {
            self.queues.push(queue);
        }
    }

    /// A masking key for a client frame (§5.3 asks for unpredictable keys; they guard
    /// intermediaries against cache poisoning, not the payload against readers).
    pub(crate) fn mask_key(&mut self) -> [u8; 4] {
        // xorshift64*: fast, and seeded per reactor from the clock and its address.
        let mut x = self.mask_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.mask_state = x;
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32).to_le_bytes()
    }
}
