//! A completeness check of ELF libraries before they are handed to the platform loader.
//!
//! `dlopen` maps each `PT_LOAD` segment of a library from the file. When the file was cut short
//! inside a segment (an interrupted copy, a full disk), the headers are whole, so the mapping
//! succeeds, and the first touch of a page past the end of the file raises `SIGBUS`: the whole
//! host dies inside `dlopen`. So before a library is opened, its ELF header and program headers
//! are read through the very descriptor that is then loaded, and every `PT_LOAD` segment's file
//! range (`p_offset + p_filesz`) must lie within the file.
//!
//! Only truncation is judged here. Both classes (ELF32, ELF64) and both byte orders are read,
//! whatever the host's. A file that does not start with the ELF magic, or whose header is
//! malformed in some other way (unknown class or byte order, an odd `e_phentsize`, the
//! `PN_XNUM` escape), passes through untouched: the platform loader refuses it with its own
//! message, without mapping anything.
//!
//! Safe code: the headers are parsed from bytes read with `pread`.
//!
//! Only ELF platforms run the check (see `crate::load_checked`); on macOS (Mach-O) and Windows
//! (PE) libraries are not checked.
//!
//! The check is made on the file as it is when it is read: a library truncated by its owner
//! between the check and `dlopen` is not caught (the trust rules leave that to the owner or
//! root).

// On platforms that skip the check only the unit tests use this module.
#![cfg_attr(any(windows, target_vendor = "apple"), allow(dead_code))]

use std::fmt;
use std::io;

const MAGIC: &[u8; 4] = b"\x7fELF";
const PT_LOAD: u32 = 1;
/// `e_phnum` value meaning "the real count is in section header 0" (not supported by glibc for
/// shared objects either): such a file is left to the platform loader.
const PN_XNUM: u16 = 0xffff;

/// The sizes and offsets of the fields read, by class.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// The size of the ELF header (`sizeof(ElfN_Ehdr)`).
    header: u64,
    /// `e_phoff`: offset and width.
    phoff: (usize, usize),
    /// `e_phentsize`, then `e_phnum` right after it.
    phentsize: usize,
    /// The size of one program header (`sizeof(ElfN_Phdr)`).
    entry: u64,
    /// `p_offset` and `p_filesz` within a program header: offset and width (4 or 8).
    p_offset: usize,
    p_filesz: usize,
    width: usize,
}

const ELF32: Layout = Layout {
    header: 52,
    phoff: (0x1c, 4),
    phentsize: 0x2a,
    entry: 32,
    p_offset: 0x04,
    p_filesz: 0x10,
    width: 4,
};

const ELF64: Layout = Layout {
    header: 64,
    phoff: (0x20, 8),
    phentsize: 0x36,
    entry: 56,
    p_offset: 0x08,
    p_filesz: 0x20,
    width: 8,
};

/// Why a library file is not complete. Each variant names where the file should have reached
/// and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incomplete {
    /// The file starts with the ELF magic but is shorter than the ELF header.
    Header {
        /// The size of the ELF header of the file's class (64 when the class byte is missing).
        needed: u64,
        /// The file's size.
        len: u64,
    },
    /// The program header table reaches past the end of the file.
    ProgramHeaders {
        /// Where the table ends.
        end: u64,
        /// The file's size.
        len: u64,
    },
    /// A `PT_LOAD` segment's file range reaches past the end of the file.
    Segment {
        /// The segment's index in the program header table (as `readelf -l` numbers them).
        index: u16,
        /// Where its file range ends (`p_offset + p_filesz`, which may exceed `u64`).
        end: u128,
        /// The file's size.
        len: u64,
    },
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Incomplete::Header { needed, len } => write!(
                f,
                "the ELF header needs {} bytes but the file has {} (truncated?)",
                grouped(needed.into()),
                grouped(len.into())
            ),
            Incomplete::ProgramHeaders { end, len } => write!(
                f,
                "the program headers end at byte {} but the file has {} bytes (truncated?)",
                grouped(end.into()),
                grouped(len.into())
            ),
            Incomplete::Segment { index, end, len } => write!(
                f,
                "segment {index} ends at byte {} but the file has {} bytes (truncated?)",
                grouped(end),
                grouped(len.into())
            ),
        }
    }
}

/// `5242880` → `5 242 880`.
fn grouped(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

/// A field reader in the file's byte order.
#[derive(Debug, Clone, Copy)]
struct Endian {
    little: bool,
}

impl Endian {
    /// The unsigned integer of `width` (2, 4 or 8) bytes at `at` in `bytes` (in bounds).
    fn uint(self, bytes: &[u8], at: usize, width: usize) -> u64 {
        let field = &bytes[at..at + width];
        let fold = |n: u64, b: &u8| (n << 8) | u64::from(*b);
        if self.little {
            field.iter().rev().fold(0, fold)
        } else {
            field.iter().fold(0, fold)
        }
    }
}

/// Checks the ELF library of `len` bytes that `read_at(offset, buf)` reads (filling `buf`
/// exactly). `Ok(Ok(()))` when it is complete or not an ELF file the check understands; an
/// I/O error only when reading a range inside the file fails.
pub(crate) fn check(
    len: u64,
    mut read_at: impl FnMut(u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<Result<(), Incomplete>> {
    let mut header = [0u8; 64];
    let head_len = header.len().min(usize::try_from(len).unwrap_or(usize::MAX));
    read_at(0, &mut header[..head_len])?;
    let head = &header[..head_len];
    if head.len() < MAGIC.len() || &head[..MAGIC.len()] != MAGIC {
        return Ok(Ok(())); // not ELF: the platform loader says what it is not
    }
    let layout = match head.get(4) {
        Some(1) => ELF32,
        Some(2) => ELF64,
        // Too short to say: the larger header is what the host (64-bit) would need.
        None => return Ok(Err(Incomplete::Header { needed: 64, len })),
        Some(_) => return Ok(Ok(())), // an unknown class: the platform loader refuses it
    };
    if len < layout.header {
        return Ok(Err(Incomplete::Header {
            needed: layout.header,
            len,
        }));
    }
    let endian = match head[5] {
        1 => Endian { little: true },
        2 => Endian { little: false },
        _ => return Ok(Ok(())), // an unknown byte order: the platform loader refuses it
    };
    let phoff = endian.uint(head, layout.phoff.0, layout.phoff.1);
    let phentsize = endian.uint(head, layout.phentsize, 2);
    let phnum = endian.uint(head, layout.phentsize + 2, 2);
    if phnum == 0 || phnum == u64::from(PN_XNUM) || phentsize < layout.entry {
        return Ok(Ok(())); // nothing to map, or malformed: left to the platform loader
    }
    // At most 65 535 entries of 65 535 bytes: no overflow, and a bounded read.
    let table_len = phentsize * phnum;
    let table_end = u128::from(phoff) + u128::from(table_len);
    if table_end > u128::from(len) {
        return Ok(Err(Incomplete::ProgramHeaders {
            end: u64::try_from(table_end).unwrap_or(u64::MAX),
            len,
        }));
    }
    let mut table = vec![0u8; table_len as usize];
    read_at(phoff, &mut table)?;
    for (index, entry) in table.chunks_exact(phentsize as usize).enumerate() {
        if endian.uint(entry, 0, 4) != u64::from(PT_LOAD) {
            continue;
        }
        let offset = endian.uint(entry, layout.p_offset, layout.width);
        let filesz = endian.uint(entry, layout.p_filesz, layout.width);
        let end = u128::from(offset) + u128::from(filesz);
        if end > u128::from(len) {
            return Ok(Err(Incomplete::Segment {
                // `phnum` fits a u16, so does the index.
                index: u16::try_from(index).unwrap_or(u16::MAX),
                end,
                len,
            }));
        }
    }
    Ok(Ok(()))
}

/// [`check`] on an open file, read through its descriptor with `pread` (the shared offset is
/// not moved).
#[cfg(unix)]
pub(crate) fn check_file(file: &std::fs::File) -> io::Result<Result<(), Incomplete>> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    check(len, |offset, buf| file.read_exact_at(buf, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`check`] on bytes in memory.
    fn check_bytes(bytes: &[u8]) -> Result<(), Incomplete> {
        check(bytes.len() as u64, |offset, buf| {
            let start = usize::try_from(offset).unwrap();
            let range = bytes
                .get(start..start + buf.len())
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(range);
            Ok(())
        })
        .expect("reads within the file succeed")
    }

    /// A program header: type, offset and file size; the other fields zero.
    struct Segment {
        kind: u32,
        offset: u64,
        filesz: u64,
    }

    fn load(offset: u64, filesz: u64) -> Segment {
        Segment {
            kind: PT_LOAD,
            offset,
            filesz,
        }
    }

    /// A minimal ELF file of the class (`64` or `32`) and byte order, its program headers right
    /// after the header, padded with zeros to `len` bytes.
    fn elf(class: u8, little: bool, segments: &[Segment], len: usize) -> Vec<u8> {
        let layout = if class == 64 { ELF64 } else { ELF32 };
        let put = |bytes: &mut Vec<u8>, at: usize, width: usize, value: u64| {
            let be = value.to_be_bytes();
            let mut field = be[8 - width..].to_vec();
            if little {
                field.reverse();
            }
            bytes[at..at + width].copy_from_slice(&field);
        };
        let table_end = layout.header as usize + segments.len() * layout.entry as usize;
        let mut bytes = vec![0u8; len.max(table_end)];
        bytes[..4].copy_from_slice(MAGIC);
        bytes[4] = if class == 64 { 2 } else { 1 };
        bytes[5] = if little { 1 } else { 2 };
        bytes[6] = 1; // EV_CURRENT
        put(&mut bytes, layout.phoff.0, layout.phoff.1, layout.header);
        put(&mut bytes, layout.phentsize, 2, layout.entry);
        put(&mut bytes, layout.phentsize + 2, 2, segments.len() as u64);
        for (i, segment) in segments.iter().enumerate() {
            let at = layout.header as usize + i * layout.entry as usize;
            put(&mut bytes, at, 4, u64::from(segment.kind));
            put(
                &mut bytes,
                at + layout.p_offset,
                layout.width,
                segment.offset,
            );
            put(
                &mut bytes,
                at + layout.p_filesz,
                layout.width,
                segment.filesz,
            );
        }
        bytes
    }

    #[test]
    fn a_well_formed_library_passes_in_every_class_and_byte_order() {
        for class in [32, 64] {
            for little in [true, false] {
                let segments = [
                    Segment {
                        kind: 6, // PT_PHDR
                        offset: 64,
                        filesz: 112,
                    },
                    load(0, 4096),
                    load(4096, 4096),
                ];
                let bytes = elf(class, little, &segments, 8192);
                assert_eq!(check_bytes(&bytes), Ok(()), "ELF{class} little={little}");
            }
        }
    }

    #[test]
    fn a_file_cut_inside_a_segment_is_incomplete() {
        for class in [32, 64] {
            for little in [true, false] {
                let bytes = elf(
                    class,
                    little,
                    &[load(0, 4096), load(4096, 5_242_880)],
                    1_048_576,
                );
                assert_eq!(
                    check_bytes(&bytes),
                    Err(Incomplete::Segment {
                        index: 1,
                        end: 5_246_976,
                        len: 1_048_576
                    }),
                    "ELF{class} little={little}"
                );
            }
        }
        // Only loadable segments count: a note past the end is not mapped.
        let note = Segment {
            kind: 4, // PT_NOTE
            offset: 0,
            filesz: 1 << 40,
        };
        assert_eq!(
            check_bytes(&elf(64, true, &[note, load(0, 100)], 200)),
            Ok(())
        );
    }

    #[test]
    fn a_segment_whose_end_overflows_is_incomplete() {
        let bytes = elf(64, true, &[load(u64::MAX, u64::MAX)], 4096);
        let error = check_bytes(&bytes).unwrap_err();
        assert_eq!(
            error,
            Incomplete::Segment {
                index: 0,
                end: u128::from(u64::MAX) * 2,
                len: 4096
            }
        );
    }

    #[test]
    fn a_short_header_or_program_header_table_is_incomplete() {
        let whole = elf(64, true, &[load(0, 4096), load(4096, 4096)], 8192);
        assert_eq!(
            check_bytes(&whole[..40]),
            Err(Incomplete::Header {
                needed: 64,
                len: 40
            })
        );
        assert_eq!(
            check_bytes(&whole[..4]),
            Err(Incomplete::Header { needed: 64, len: 4 })
        );
        // Header (64) + two entries (2 × 56) = 176 bytes.
        assert_eq!(
            check_bytes(&whole[..100]),
            Err(Incomplete::ProgramHeaders { end: 176, len: 100 })
        );
        let whole32 = elf(32, false, &[load(0, 4096)], 4096);
        assert_eq!(
            check_bytes(&whole32[..51]),
            Err(Incomplete::Header {
                needed: 52,
                len: 51
            })
        );
    }

    #[test]
    fn a_file_without_the_elf_magic_is_left_to_the_platform_loader() {
        assert_eq!(check_bytes(b""), Ok(()));
        assert_eq!(check_bytes(b"\x7fEL"), Ok(()));
        assert_eq!(check_bytes(b"this is not a library\n"), Ok(()));
        let mut mach_o = elf(64, true, &[load(0, 1 << 30)], 4096);
        mach_o[..4].copy_from_slice(&[0xcf, 0xfa, 0xed, 0xfe]);
        assert_eq!(check_bytes(&mach_o), Ok(()));
    }

    #[test]
    fn a_malformed_header_is_left_to_the_platform_loader() {
        let mut bad_class = elf(64, true, &[load(0, 1 << 30)], 4096);
        bad_class[4] = 3;
        assert_eq!(check_bytes(&bad_class), Ok(()));
        let mut bad_order = elf(64, true, &[load(0, 1 << 30)], 4096);
        bad_order[5] = 0;
        assert_eq!(check_bytes(&bad_order), Ok(()));
        let mut small_entries = elf(64, true, &[load(0, 1 << 30)], 4096);
        small_entries[ELF64.phentsize] = 8;
        assert_eq!(check_bytes(&small_entries), Ok(()));
    }

    #[test]
    fn messages_group_digits() {
        assert_eq!(
            Incomplete::Segment {
                index: 2,
                end: 5_242_880,
                len: 1_048_576
            }
            .to_string(),
            "segment 2 ends at byte 5 242 880 but the file has 1 048 576 bytes (truncated?)"
        );
        assert_eq!(
            Incomplete::ProgramHeaders { end: 680, len: 100 }.to_string(),
            "the program headers end at byte 680 but the file has 100 bytes (truncated?)"
        );
        assert_eq!(
            Incomplete::Header { needed: 64, len: 0 }.to_string(),
            "the ELF header needs 64 bytes but the file has 0 (truncated?)"
        );
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1 000");
        assert_eq!(grouped(0), "0");
    }
}
