//! Child output: reading a pipe and cutting it into log entries.
//!
//! Unlike ContainerPilot's line scanner, nothing is lost: a last line without newline is logged
//! at EOF, and a line longer than [`MAX_ENTRY`] becomes several entries instead of breaking the
//! pipe.

use std::os::fd::OwnedFd;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe::Receiver;

use super::Origin;
use super::layer::CHILD_OUTPUT;
use crate::errors::describe_io_error;

/// The longest entry made from one line; longer lines are cut into entries of at most this many
/// bytes (ContainerPilot's scanner limit, 64 KiB).
pub(super) const MAX_ENTRY: usize = 64 * 1024;

/// Reads `pipe` until EOF, logging every line; see [`super::log_lines`].
pub(super) async fn read(pipe: OwnedFd, origin: &Origin) {
    // Makes the descriptor non-blocking and registers it with the runtime, so that waiting for
    // output never holds up the runtime's only thread.
    let mut rx = match Receiver::from_owned_fd(pipe) {
        Ok(rx) => rx,
        Err(err) => {
            tracing::error!(
                "cannot read the output of {}: {}",
                origin.describe(),
                describe_io_error(&err)
            );
            return;
        }
    };
    let mut lines = Lines::default();
    let mut emit = |line: &[u8]| log_line(origin, line);
    let mut chunk = [0u8; 8192];
    loop {
        match rx.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => lines.push(&chunk[..n], &mut emit),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::warn!(
                    "cannot read the output of {}: {}",
                    origin.describe(),
                    describe_io_error(&err)
                );
                break;
            }
        }
    }
    lines.finish(&mut emit);
}

/// Logs one line of child output at INFO, with the fields ContainerPilot gives it: `job` for a
/// job's output, `check` (`check.<job>`) for a health check's, and `pid`.
pub(super) fn log_line(origin: &Origin, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    if origin.check {
        tracing::info!(
            target: CHILD_OUTPUT,
            check = %format_args!("check.{}", origin.job),
            pid = origin.pid,
            "{text}"
        );
    } else {
        tracing::info!(target: CHILD_OUTPUT, job = &*origin.job, pid = origin.pid, "{text}");
    }
}

/// Cuts a byte stream into lines: split on `\n`, a trailing `\r` removed, long lines cut into
/// pieces of at most [`MAX_ENTRY`] bytes. Where the input is cut between reads makes no
/// difference to the lines that come out.
#[derive(Default)]
pub(super) struct Lines {
    /// The start of a line whose end has not arrived yet.
    pending: Vec<u8>,
}

impl Lines {
    pub(super) fn push(&mut self, data: &[u8], emit: &mut impl FnMut(&[u8])) {
        let scanned = self.pending.len();
        self.pending.extend_from_slice(data);
        let mut start = 0;
        let mut from = scanned;
        while let Some(i) = self.pending[from..].iter().position(|&b| b == b'\n') {
            let end = from + i;
            emit_line(strip_cr(&self.pending[start..end]), emit);
            start = end + 1;
            from = start;
        }
        // Without its end a line can still be cut once it cannot fit in one entry any more,
        // whatever follows. The `+ 1` leaves room for a `\r` that a `\n` would make a line end.
        while self.pending.len() - start > MAX_ENTRY + 1 {
            let cut = cut_point(&self.pending[start..]);
            emit(&self.pending[start..start + cut]);
            start += cut;
        }
        self.pending.drain(..start);
        // A long line must not keep its buffer for the life of the pipe.
        if self.pending.is_empty() && self.pending.capacity() > 4 * 8192 {
            self.pending = Vec::new();
        }
    }

    /// Logs the last line, which had no newline.
    pub(super) fn finish(self, emit: &mut impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit_line(strip_cr(&self.pending), emit);
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn emit_line(mut line: &[u8], emit: &mut impl FnMut(&[u8])) {
    while line.len() > MAX_ENTRY {
        let cut = cut_point(line);
        emit(&line[..cut]);
        line = &line[cut..];
    }
    emit(line);
}

/// Where to end an entry cut from `line` (longer than [`MAX_ENTRY`]): at most `MAX_ENTRY`
/// bytes, moved back to the start of a UTF-8 character split by the limit, so that each piece
/// decodes without replacement characters.
fn cut_point(line: &[u8]) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    let mut cut = MAX_ENTRY;
    // A character has at most 3 continuation bytes; more means the text is not UTF-8 anyway.
    while cut > MAX_ENTRY - 3 && is_continuation(line[cut]) {
        cut -= 1;
    }
    if is_continuation(line[cut]) {
        MAX_ENTRY
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_in_pieces(data: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut lines = Lines::default();
        let mut emit = |line: &[u8]| out.push(line.to_vec());
        for chunk in data.chunks(piece) {
            lines.push(chunk, &mut emit);
        }
        lines.finish(&mut emit);
        out
    }

    fn split(data: &[u8]) -> Vec<Vec<u8>> {
        split_in_pieces(data, data.len().max(1))
    }

    fn strings(lines: &[&str]) -> Vec<Vec<u8>> {
        lines.iter().map(|l| l.as_bytes().to_vec()).collect()
    }

    #[test]
    fn splits_on_newlines_and_strips_one_trailing_carriage_return() {
        assert_eq!(
            split(b"a\r\nb\nc\r\r\nd\re\n\n"),
            strings(&["a", "b", "c\r", "d\re", ""])
        );
    }

    #[test]
    fn logs_a_last_line_without_newline() {
        assert_eq!(split(b"one\npartial"), strings(&["one", "partial"]));
        assert_eq!(split(b"one\npartial\r"), strings(&["one", "partial"]));
        assert_eq!(split(b"one\n"), strings(&["one"]));
        assert!(split(b"").is_empty());
    }

    #[test]
    fn cuts_long_lines_into_entries_of_at_most_64_kib() {
        let long = vec![b'x'; 200 * 1024];
        let mut input = long.clone();
        input.extend_from_slice(b"\nnext\n");
        let lines = split(&input);
        let sizes: Vec<usize> = lines.iter().map(Vec::len).collect();
        assert_eq!(sizes, [65536, 65536, 65536, 8192, 4]);
        assert_eq!(lines[..4].concat(), long);
    }

    #[test]
    fn a_line_of_exactly_64_kib_is_one_entry_even_with_crlf() {
        let mut input = vec![b'y'; MAX_ENTRY];
        input.extend_from_slice(b"\r\n");
        for piece in [1, 7, MAX_ENTRY, MAX_ENTRY + 1, input.len()] {
            assert_eq!(
                split_in_pieces(&input, piece),
                [vec![b'y'; MAX_ENTRY]],
                "{piece}"
            );
        }
    }

    #[test]
    fn never_cuts_inside_a_utf8_character() {
        // 3-byte characters: 65536 is not a multiple of 3, so the limit falls inside one.
        let text = "\u{2603}".repeat(70_000);
        let mut input = text.as_bytes().to_vec();
        input.push(b'\n');
        let lines = split(&input);
        assert!(lines.len() > 1);
        for line in &lines {
            assert!(line.len() <= MAX_ENTRY);
            assert!(std::str::from_utf8(line).is_ok());
        }
        assert_eq!(lines.concat(), text.as_bytes());
    }

    #[test]
    fn where_the_input_is_cut_between_reads_does_not_change_the_lines() {
        let mut input = Vec::new();
        for i in 0..50 {
            input.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        input.extend(std::iter::repeat_n(b'z', 3 * MAX_ENTRY + 5));
        input.extend_from_slice("\u{e9}".repeat(MAX_ENTRY).as_bytes());
        input.extend_from_slice(b"\r\n\n");
        input.extend(std::iter::repeat_n(0xff, MAX_ENTRY + 2));
        input.extend_from_slice(b"tail");
        let whole = split(&input);
        for piece in [
            1,
            2,
            3,
            4096,
            8192,
            MAX_ENTRY - 1,
            MAX_ENTRY + 1,
            MAX_ENTRY + 2,
        ] {
            assert!(split_in_pieces(&input, piece) == whole, "pieces of {piece}");
        }
        let joined: Vec<u8> = whole.concat();
        assert!(joined.ends_with(b"tail"));
    }
}
