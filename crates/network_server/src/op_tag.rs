//! The one encoding of the `u64` tag every event-manager operation carries:
//! what the operation was for, with its typed fields. Every submission
//! builds an [`OpTag`] and [`OpTag::encode`]s it; every completion is routed
//! by [`OpTag::decode`] (`Core::on_completion`). No other module packs bits
//! into a tag.
//!
//! Layout (unchanged from the hand-packed tags it replaces): bits 56..64 are
//! the kind, bits 0..56 its data. The file subsystems (transfers, uploads,
//! the file helper) share kind 10 and put a sub-kind in bits 52..56:
//!
//! | kind | variant            | data (bits 0..56)                              |
//! |------|--------------------|------------------------------------------------|
//! | 1    | `Accept`           | listener index (`u32`)                         |
//! | 2    | `Recv`             | 0                                              |
//! | 3    | `Write`            | 0                                              |
//! | 4    | `Shutdown`         | 0                                              |
//! | 5    | `Close`            | 0                                              |
//! | 6    | `RawRead`          | 0                                              |
//! | 7    | `AppEvent`         | 0                                              |
//! | 8    | `AppFile`          | the application's tag, `< 2^56`                |
//! | 9    | `Tick`             | 0                                              |
//! | 10   | sub 0 `Transfer`   | transfer key, `< 2^52`                         |
//! | 10   | sub 1 `Upload`     | upload key `<< 16` \| slot (0 = deliver, n = file n − 1) |
//! | 10   | sub 2 `HelperEvent` / `HelperClose` | 0 / 1                         |
//! | 10   | sub 3 `Ignore`     | 0                                              |
//! | 11   | `ShutdownEvent`    | grace period in ms, `< 2^56`                   |
//!
//! Fields narrower than their Rust type: where a type can hold exactly the
//! range, it does (listener index and upload key are `u32`), so a value
//! that does not fit cannot be constructed. The others have a documented
//! range ([`APP_TAG_LIMIT`], [`TRANSFER_KEY_LIMIT`], [`UPLOAD_MAX_FILES`])
//! that [`OpTag::encode`] checks with a `debug_assert!`; callers bring
//! values into range first with the helpers here ([`OpTag::app_file`],
//! [`OpTag::shutdown_event`], [`next_transfer_key`]; uploads refuse a file
//! past `UPLOAD_MAX_FILES`). In a release build an out-of-range value would
//! be truncated to its field, as the hand-packed tags did.
//!
//! The one application-supplied value squeezed into fewer bits is the `tag`
//! of `Ctx::file_open` / `file_stat` / `file_fstat` / `file_unlink`: 56
//! bits, the top 8 dropped (documented on `Ctx::file_open`; unchanged).
//! `Ctx::file_list_dir`'s tag never enters an operation tag and keeps all
//! 64 bits.

use std::time::Duration;

/// What an event-manager operation was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpTag {
    /// A listener's multishot accept.
    Accept {
        /// Index into the listener table.
        listener: u32,
    },
    /// A connection's multishot receive.
    Recv,
    /// A connection's write or writev.
    Write,
    /// A connection's `shutdown(SHUT_WR)`.
    Shutdown,
    /// The close of a connection, listener or application eventfd.
    Close,
    /// An application read of a RAW client (`Ctx::raw_read`/`raw_readv`).
    RawRead,
    /// An application eventfd's wait (`Ctx::eventfd_prepare`).
    AppEvent,
    /// An application file operation (`Ctx::file_open` and friends).
    AppFile {
        /// The application's tag, `< 2^56` ([`APP_TAG_LIMIT`]).
        tag: u64,
    },
    /// The server's periodic timer.
    Tick,
    /// An operation of a file transfer (`send_file.rs`).
    Transfer {
        /// The transfer's key, `< 2^52` ([`TRANSFER_KEY_LIMIT`]).
        key: u64,
    },
    /// An operation of an upload (`upload.rs`).
    Upload {
        /// The upload's key.
        upload: u32,
        /// Which of its operations.
        op: UploadOp,
    },
    /// The file helper's eventfd wait (`fs_helper.rs`).
    HelperEvent,
    /// The close of the file helper's eventfd.
    HelperClose,
    /// A completion nobody waits for (a directory closed before its index
    /// file opens).
    Ignore,
    /// The shutdown eventfd's wait (`Server::shutdown_handle`).
    ShutdownEvent {
        /// The grace period in milliseconds, `< 2^56` ([`APP_TAG_LIMIT`]).
        grace_ms: u64,
    },
}

/// Which operation of an upload a completion is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadOp {
    /// A nop whose completion delivers the upload's events.
    Deliver,
    /// An operation on the upload's file with this index
    /// (`< UPLOAD_MAX_FILES`).
    File(u16),
}

const KIND_SHIFT: u32 = 56;
const DATA_MASK: u64 = (1 << KIND_SHIFT) - 1;
const SUB_SHIFT: u32 = 52;
const SUB_MASK: u64 = (1 << SUB_SHIFT) - 1;

const KIND_ACCEPT: u64 = 1;
const KIND_RECV: u64 = 2;
const KIND_WRITE: u64 = 3;
const KIND_SHUTDOWN: u64 = 4;
const KIND_CLOSE: u64 = 5;
const KIND_RAW_READ: u64 = 6;
const KIND_EVENT: u64 = 7;
const KIND_FILE: u64 = 8;
const KIND_TICK: u64 = 9;
const KIND_FILES: u64 = 10;
const KIND_SHUTDOWN_EVENT: u64 = 11;

const SUB_TRANSFER: u64 = 0;
const SUB_UPLOAD: u64 = 1;
const SUB_HELPER: u64 = 2;
const SUB_IGNORE: u64 = 3;

/// Upload slots: 0 delivers, `n` is file `n - 1`. (Slot `0xffff` was once
/// reserved for a resume timer that nothing submits; it decodes to `None`.)
const SLOT_DELIVER: u64 = 0;
const SLOT_SHIFT: u32 = 16;
const SLOT_MASK: u64 = (1 << SLOT_SHIFT) - 1;

/// Application tags (`Ctx::file_open`, …) and the shutdown grace period in
/// milliseconds are below this: 56 bits.
pub(crate) const APP_TAG_LIMIT: u64 = 1 << KIND_SHIFT;
/// Transfer keys are below this: 52 bits.
pub(crate) const TRANSFER_KEY_LIMIT: u64 = 1 << SUB_SHIFT;
/// Most files one upload may create: file indexes are `0..UPLOAD_MAX_FILES`
/// (slot `index + 1` must stay below `0xffff`).
pub(crate) const UPLOAD_MAX_FILES: usize = 0xfffe;

/// The transfer key after `key`, wrapping within [`TRANSFER_KEY_LIMIT`].
pub(crate) const fn next_transfer_key(key: u64) -> u64 {
    (key + 1) & SUB_MASK
}

impl OpTag {
    /// An application file operation's tag: `tag`'s low 56 bits (the top 8
    /// are dropped, as documented on `Ctx::file_open`).
    pub(crate) const fn app_file(tag: u64) -> OpTag {
        OpTag::AppFile {
            tag: tag & DATA_MASK,
        }
    }

    /// The shutdown eventfd's tag, with `grace` in milliseconds clamped to
    /// 56 bits (about 2.3 million years).
    pub(crate) fn shutdown_event(grace: Duration) -> OpTag {
        OpTag::ShutdownEvent {
            grace_ms: grace.as_millis().min(u128::from(DATA_MASK)) as u64,
        }
    }

    /// The `u64` given to the event manager.
    pub(crate) fn encode(self) -> u64 {
        let (kind, data) = match self {
            OpTag::Accept { listener } => (KIND_ACCEPT, u64::from(listener)),
            OpTag::Recv => (KIND_RECV, 0),
            OpTag::Write => (KIND_WRITE, 0),
            OpTag::Shutdown => (KIND_SHUTDOWN, 0),
            OpTag::Close => (KIND_CLOSE, 0),
            OpTag::RawRead => (KIND_RAW_READ, 0),
            OpTag::AppEvent => (KIND_EVENT, 0),
            OpTag::AppFile { tag } => {
                debug_assert!(tag < APP_TAG_LIMIT, "application tag {tag:#x} over 56 bits");
                (KIND_FILE, tag)
            }
            OpTag::Tick => (KIND_TICK, 0),
            OpTag::Transfer { key } => {
                debug_assert!(
                    key < TRANSFER_KEY_LIMIT,
                    "transfer key {key:#x} over 52 bits"
                );
                (KIND_FILES, sub(SUB_TRANSFER, key))
            }
            OpTag::Upload { upload, op } => {
                let slot = match op {
                    UploadOp::Deliver => SLOT_DELIVER,
                    UploadOp::File(id) => {
                        debug_assert!(
                            (id as usize) < UPLOAD_MAX_FILES,
                            "upload file index {id} out of range"
                        );
                        u64::from(id) + 1
                    }
                };
                let key = (u64::from(upload) << SLOT_SHIFT) | (slot & SLOT_MASK);
                (KIND_FILES, sub(SUB_UPLOAD, key))
            }
            OpTag::HelperEvent => (KIND_FILES, sub(SUB_HELPER, 0)),
            OpTag::HelperClose => (KIND_FILES, sub(SUB_HELPER, 1)),
            OpTag::Ignore => (KIND_FILES, sub(SUB_IGNORE, 0)),
            OpTag::ShutdownEvent { grace_ms } => {
                debug_assert!(grace_ms < APP_TAG_LIMIT, "grace {grace_ms} ms over 56 bits");
                (KIND_SHUTDOWN_EVENT, grace_ms)
            }
        };
        (kind << KIND_SHIFT) | (data & DATA_MASK)
    }

    /// What a completion's tag says, or `None` for a tag this encoding
    /// never produces (unknown kind or sub-kind, data where a kind has
    /// none, an unused upload slot).
    pub(crate) fn decode(t: u64) -> Option<OpTag> {
        let (kind, data) = (t >> KIND_SHIFT, t & DATA_MASK);
        let bare = |tag: OpTag| (data == 0).then_some(tag);
        match kind {
            KIND_ACCEPT => u32::try_from(data)
                .ok()
                .map(|listener| OpTag::Accept { listener }),
            KIND_RECV => bare(OpTag::Recv),
            KIND_WRITE => bare(OpTag::Write),
            KIND_SHUTDOWN => bare(OpTag::Shutdown),
            KIND_CLOSE => bare(OpTag::Close),
            KIND_RAW_READ => bare(OpTag::RawRead),
            KIND_EVENT => bare(OpTag::AppEvent),
            KIND_FILE => Some(OpTag::AppFile { tag: data }),
            KIND_TICK => bare(OpTag::Tick),
            KIND_FILES => {
                let (s, key) = (data >> SUB_SHIFT, data & SUB_MASK);
                match (s, key) {
                    (SUB_TRANSFER, key) => Some(OpTag::Transfer { key }),
                    (SUB_UPLOAD, key) => {
                        let upload = u32::try_from(key >> SLOT_SHIFT).ok()?;
                        let op = match key & SLOT_MASK {
                            SLOT_DELIVER => UploadOp::Deliver,
                            n if (n as usize) <= UPLOAD_MAX_FILES => UploadOp::File(n as u16 - 1),
                            _ => return None,
                        };
                        Some(OpTag::Upload { upload, op })
                    }
                    (SUB_HELPER, 0) => Some(OpTag::HelperEvent),
                    (SUB_HELPER, 1) => Some(OpTag::HelperClose),
                    (SUB_IGNORE, 0) => Some(OpTag::Ignore),
                    _ => None,
                }
            }
            KIND_SHUTDOWN_EVENT => Some(OpTag::ShutdownEvent { grace_ms: data }),
            _ => None,
        }
    }
}

/// A file subsystem's data: sub-kind in bits 52..56, key below.
const fn sub(s: u64, key: u64) -> u64 {
    (s << SUB_SHIFT) | (key & SUB_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(t: OpTag) {
        assert_eq!(
            OpTag::decode(t.encode()),
            Some(t),
            "{t:?} = {:#x}",
            t.encode()
        );
    }

    #[test]
    fn every_variant_round_trips_at_its_bounds() {
        for listener in [0, 1, u32::MAX] {
            round_trip(OpTag::Accept { listener });
        }
        for t in [
            OpTag::Recv,
            OpTag::Write,
            OpTag::Shutdown,
            OpTag::Close,
            OpTag::RawRead,
            OpTag::AppEvent,
            OpTag::Tick,
            OpTag::HelperEvent,
            OpTag::HelperClose,
            OpTag::Ignore,
        ] {
            round_trip(t);
        }
        for tag in [0, 1, APP_TAG_LIMIT - 1] {
            round_trip(OpTag::AppFile { tag });
        }
        for key in [0, 1, TRANSFER_KEY_LIMIT - 1] {
            round_trip(OpTag::Transfer { key });
        }
        let last_file = (UPLOAD_MAX_FILES - 1) as u16;
        for upload in [0, 1, u32::MAX] {
            for op in [
                UploadOp::Deliver,
                UploadOp::File(0),
                UploadOp::File(last_file),
            ] {
                round_trip(OpTag::Upload { upload, op });
            }
        }
        for grace_ms in [0, 1, APP_TAG_LIMIT - 1] {
            round_trip(OpTag::ShutdownEvent { grace_ms });
        }
    }

    #[test]
    fn encoding_is_the_hand_packed_layout() {
        // The bits a running server puts on in-flight operations.
        assert_eq!(OpTag::Accept { listener: 3 }.encode(), 1 << 56 | 3);
        assert_eq!(OpTag::Close.encode(), 5 << 56);
        assert_eq!(OpTag::AppFile { tag: 7 }.encode(), 8 << 56 | 7);
        assert_eq!(OpTag::Transfer { key: 9 }.encode(), 10 << 56 | 9);
        let up = OpTag::Upload {
            upload: 2,
            op: UploadOp::File(4),
        };
        assert_eq!(up.encode(), 10 << 56 | 1 << 52 | 2 << 16 | 5);
        assert_eq!(OpTag::HelperClose.encode(), 10 << 56 | 2 << 52 | 1);
        assert_eq!(OpTag::Ignore.encode(), 10 << 56 | 3 << 52);
        assert_eq!(
            OpTag::ShutdownEvent { grace_ms: 1500 }.encode(),
            11 << 56 | 1500
        );
    }

    #[test]
    fn unknown_tags_decode_to_none() {
        for t in [
            0,
            12 << 56,
            u64::MAX,
            2 << 56 | 1,                 // data on a kind without any
            1 << 56 | 1 << 32,           // listener index over u32
            10 << 56 | 4 << 52,          // unknown file sub-kind
            10 << 56 | 2 << 52 | 2,      // helper data other than 0/1
            10 << 56 | 3 << 52 | 1,      // ignore with data
            10 << 56 | 1 << 52 | 0xffff, // the unused upload slot
        ] {
            assert_eq!(OpTag::decode(t), None, "{t:#x}");
        }
    }

    #[test]
    fn constructors_bring_values_into_range() {
        assert_eq!(
            OpTag::app_file(u64::MAX),
            OpTag::AppFile {
                tag: APP_TAG_LIMIT - 1
            }
        );
        assert_eq!(OpTag::app_file(5), OpTag::AppFile { tag: 5 });
        assert_eq!(
            OpTag::shutdown_event(Duration::MAX),
            OpTag::ShutdownEvent {
                grace_ms: APP_TAG_LIMIT - 1
            }
        );
        assert_eq!(
            OpTag::shutdown_event(Duration::from_secs(2)),
            OpTag::ShutdownEvent { grace_ms: 2000 }
        );
        assert_eq!(next_transfer_key(0), 1);
        assert_eq!(next_transfer_key(TRANSFER_KEY_LIMIT - 1), 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "over 56 bits")]
    fn app_tag_over_56_bits_is_rejected() {
        let _ = OpTag::AppFile { tag: APP_TAG_LIMIT }.encode();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "over 52 bits")]
    fn transfer_key_over_52_bits_is_rejected() {
        let _ = OpTag::Transfer {
            key: TRANSFER_KEY_LIMIT,
        }
        .encode();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out of range")]
    fn upload_file_index_out_of_range_is_rejected() {
        let _ = OpTag::Upload {
            upload: 0,
            op: UploadOp::File(UPLOAD_MAX_FILES as u16),
        }
        .encode();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "over 56 bits")]
    fn grace_over_56_bits_is_rejected() {
        let _ = OpTag::ShutdownEvent {
            grace_ms: APP_TAG_LIMIT,
        }
        .encode();
    }
}
