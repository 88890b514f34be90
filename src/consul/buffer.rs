//! A buffer for Consul's answers that child processes never inherit.
//!
//! A watch over a thousand instances receives megabytes on every change, and keeps one buffer for
//! all its answers (allocating that much afresh each time costs more, in page faults, than
//! decoding it). But pilot starts hooks with fork and exec: fork write-protects every page of
//! pilot's memory until the child has exec'd, and pilot's next write to each page takes a fault.
//! With an ordinary buffer, rewriting it after a hook cost about as much as decoding the answer.
//!
//! So the bytes live in a private mapping of their own, marked `MADV_DONTFORK`: a child never gets
//! it, and fork neither copies its page tables nor write-protects it. A child never needs it:
//! between fork and exec only the spawner's async-signal-safe code runs, and it reads only what
//! was allocated before the fork. The memory never comes from (or goes back to) the allocator, so
//! no other allocation, such as a child's argv, can ever sit in those pages.

use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous, munmap};

/// The smallest mapping, and the unit mappings grow by.
const GRAIN: usize = 64 * 1024;

/// A growable byte buffer in its own mapping, left out of child processes.
pub struct AnswerBuffer {
    /// The mapping (`cap` bytes) when there is one.
    map: Option<NonNull<u8>>,
    len: usize,
    cap: usize,
}

// SAFETY: the buffer owns its mapping exclusively, as a `Vec<u8>` owns its allocation.
unsafe impl Send for AnswerBuffer {}

impl AnswerBuffer {
    /// An empty buffer; it maps memory when first written.
    pub fn new() -> AnswerBuffer {
        AnswerBuffer {
            map: None,
            len: 0,
            cap: 0,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self.map {
            // SAFETY: the mapping is `cap` bytes, readable, and the first `len` were written.
            Some(map) => unsafe { std::slice::from_raw_parts(map.as_ptr(), self.len) },
            None => &[],
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many bytes it holds without growing.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Makes room for `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) -> Result<(), String> {
        let needed = self.len.checked_add(additional).ok_or("answer too large")?;
        if needed <= self.cap {
            return Ok(());
        }
        let cap = needed
            .max(self.cap.saturating_mul(2))
            .max(GRAIN)
            .checked_next_multiple_of(GRAIN)
            .ok_or("answer too large")?;
        let length = NonZeroUsize::new(cap).ok_or("answer too large")?;
        // SAFETY: a new private anonymous mapping, placed by the kernel: it aliases nothing.
        let map = unsafe {
            mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .map_err(|e| format!("cannot map {cap} bytes for the answer: {e}"))?;
        // SAFETY: advice on the whole of the mapping just made; it changes no contents. Should the
        // kernel refuse, the buffer still works, children just inherit it.
        let _ = unsafe { madvise(map, cap, MmapAdvise::MADV_DONTFORK) };
        let map = map.cast::<u8>();
        if let Some(old) = self.map {
            // SAFETY: both mappings are ours and distinct; `len` bytes of the old one are written
            // and fit in the new one (`cap` >= `needed` > `len`).
            unsafe { std::ptr::copy_nonoverlapping(old.as_ptr(), map.as_ptr(), self.len) };
            self.unmap(old);
        }
        self.map = Some(map);
        self.cap = cap;
        Ok(())
    }

    /// Appends `data`.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), String> {
        self.reserve(data.len())?;
        if let Some(map) = self.map {
            // SAFETY: `reserve` made room for `len + data.len()` bytes, and `data` cannot be in
            // the mapping (only `as_slice` lends it out, and not mutably at the same time).
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), map.as_ptr().add(self.len), data.len())
            };
            self.len += data.len();
        }
        Ok(())
    }

    fn unmap(&self, map: NonNull<u8>) {
        // SAFETY: `map` is a mapping of `cap` bytes that this buffer made and no longer uses.
        let _ = unsafe { munmap(map.cast(), self.cap) };
    }
}

impl Default for AnswerBuffer {
    fn default() -> AnswerBuffer {
        AnswerBuffer::new()
    }
}

impl Drop for AnswerBuffer {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            self.unmap(map);
        }
    }
}

impl std::fmt::Debug for AnswerBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerBuffer")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_keeps_its_bytes_and_clears() {
        let mut buffer = AnswerBuffer::new();
        assert!(buffer.is_empty());
        assert_eq!(buffer.as_slice(), b"");
        buffer.extend_from_slice(b"hello ").unwrap();
        assert_eq!(buffer.capacity(), GRAIN);
        let big: Vec<u8> = (0..3 * GRAIN).map(|i| (i % 251) as u8).collect();
        buffer.extend_from_slice(&big).unwrap();
        assert_eq!(buffer.len(), 6 + big.len());
        assert_eq!(&buffer.as_slice()[..6], b"hello ");
        assert_eq!(&buffer.as_slice()[6..], &big[..]);
        let cap = buffer.capacity();
        assert!(cap >= 6 + big.len() && cap.is_multiple_of(GRAIN), "{cap}");
        buffer.clear();
        assert!(buffer.is_empty());
        buffer.extend_from_slice(b"again").unwrap();
        assert_eq!(buffer.as_slice(), b"again");
        assert_eq!(buffer.capacity(), cap, "clearing keeps the memory");
    }

    #[test]
    fn reserve_makes_room_once() {
        let mut buffer = AnswerBuffer::new();
        buffer.reserve(1_000_000).unwrap();
        let cap = buffer.capacity();
        assert!(cap >= 1_000_000);
        buffer.extend_from_slice(&vec![7; 1_000_000]).unwrap();
        assert_eq!(buffer.capacity(), cap);
        assert!(buffer.as_slice().iter().all(|&b| b == 7));
    }
}
