//! [`Decoder`]: the receiving side of a server's WebSocket connection. A
//! resumable state machine fed whatever slices arrive; it parses frame
//! headers (RFC 6455 §5.2), unmasks payloads in place (§5.3), enforces the
//! fragmentation rules (§5.4), control-frame rules (§5.5), UTF-8 of text
//! messages (§8.1), Close payloads (§5.5.1, §7.4) and the size limits, and
//! returns message data as ranges of the slice it was given — nothing is
//! copied except control-frame payloads (at most 125 bytes, kept inside the
//! decoder so that a Ping or Close split across reads needs no buffer from
//! the caller).
//!
//! Every check happens at the earliest byte that decides it, in a fixed
//! order, so feeding a stream in any pieces gives the same events and the
//! same error as feeding it whole.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::close::parse_close_payload;
use super::frame::MAX_CONTROL_PAYLOAD;
use super::{apply_mask, CloseCode, Config, Error, MessageKind, Opcode, Utf8State, Utf8Validator};
use crate::snapshot::{check, ImportError};

use DecoderPhase as State;

/// What one [`Decoder::decode`] call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'d> {
    /// Input bytes used (headers, payload). Continue with
    /// `&mut input[consumed..]`.
    pub consumed: usize,
    /// The event, or `None` when the input ran out first (all of it was
    /// consumed) or the connection is closed ([`Decoder::is_closed`]).
    pub event: Option<Event<'d>>,
}

/// Something the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'d> {
    /// A piece of a text or binary message, already unmasked in place.
    Data(Data),
    /// A Ping with its payload (≤ 125 bytes); answer with a Pong carrying
    /// the same payload (RFC 6455 §5.5.2).
    Ping(&'d [u8]),
    /// A Pong with its payload (≤ 125 bytes).
    Pong(&'d [u8]),
    /// A Close, with its status code and UTF-8 reason if it had a body
    /// (`None` is reported to the application as 1005, "no status"). The
    /// code is one [`CloseCode::is_valid`] accepts. The decoder is closed
    /// afterwards: answer with a Close (usually echoing the code) and close
    /// the connection (RFC 6455 §5.5.1).
    Close(Option<(CloseCode, &'d str)>),
}

/// A piece of message data: see [`Event::Data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// Text or binary, from the message's first frame.
    pub kind: MessageKind,
    /// The unmasked payload bytes, as a range of the slice given to the
    /// `decode` call. Empty only when a message ends with an empty frame.
    pub data: Range<usize>,
    /// The message has RSV1 set: the data is raw DEFLATE to pass to an
    /// [`Inflater`](super::Inflater) (RFC 7692 §6), and its UTF-8 has not
    /// been checked (the inflater does it).
    pub compressed: bool,
    /// This piece ends the message.
    pub fin: bool,
}

impl Data {
    /// The data: `&input[self.data]`, where `input` is the slice given to
    /// the `decode` call that returned it.
    pub fn slice<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        &input[self.data.clone()]
    }
}

/// Where a [`Decoder`] is; part of [`DecoderState`]. The encoding depends
/// on the order of the variants (see [`STATE_VERSION`](crate::STATE_VERSION)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecoderPhase {
    /// Reading a frame header (possibly partly read into `head`).
    Header,
    /// In a data frame's payload.
    Data,
    /// In a control frame's payload, collected into `control`.
    Control,
    /// A Close frame was received; nothing more is read.
    Closed,
}

/// A [`Decoder`]'s state as plain data: see [`Decoder::export`] and
/// [`Decoder::import`]. The current frame's fields (`fin`, `opcode`,
/// `mask`, `remaining`, `mask_offset`, `control`) matter only in the
/// [`Data`](DecoderPhase::Data) and [`Control`](DecoderPhase::Control)
/// phases and are zero (`Continuation`, empty) otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecoderState {
    /// Where the decoder is.
    pub phase: DecoderPhase,
    /// The bytes of a frame header received so far, when it arrived in
    /// pieces (in the [`Header`](DecoderPhase::Header) phase; shorter than
    /// the header).
    pub head: Vec<u8>,
    /// The current frame has FIN set.
    pub fin: bool,
    /// The current frame's opcode.
    pub opcode: Opcode,
    /// The current frame's masking key.
    pub mask: [u8; 4],
    /// Payload bytes of the current frame still to come.
    pub remaining: u64,
    /// Payload bytes of the current data frame so far, modulo 4: where the
    /// masking key continues.
    pub mask_offset: u8,
    /// The kind of the open (fragmented, or partly received) data message.
    pub message: Option<MessageKind>,
    /// The open message has RSV1 set: its payload is compressed
    /// (permessage-deflate; the inflater's own state is not part of this).
    pub compressed: bool,
    /// Payload bytes of the open message so far, the current frame's whole
    /// declared length included.
    pub message_len: u64,
    /// UTF-8 validation of an open uncompressed text message.
    pub utf8: Utf8State,
    /// The part of a control frame's payload received so far, unmasked.
    pub control: Vec<u8>,
    /// The error the decoder failed with; it returns it again.
    pub error: Option<Error>,
}

/// An event without borrows, turned into an [`Event`] by `decode`.
enum Raw {
    Data(Data),
    Control(Opcode),
}

/// Decodes the frames a client sends to the server.
///
/// Feed it the received bytes with [`decode`](Decoder::decode), which
/// returns one [`Event`] at a time; call it again with the unconsumed rest
/// until it returns no event. Text and binary messages come as
/// [`Event::Data`] pieces — one per frame, or per part of a frame that
/// arrived — the last of which has [`fin`](Data::fin) set. Control frames
/// may come between the pieces of a fragmented message (RFC 6455 §5.4).
///
/// Errors are final: the caller sends a Close with
/// [`Error::close_code`] and closes the connection; every further call
/// returns the same error.
///
/// ```
/// use protocol::ws::{write_client_frame, Config, Decoder, Event, Opcode};
///
/// // "Hel" + "lo" as a fragmented text message with a Ping in between.
/// let mut wire = Vec::new();
/// write_client_frame(&mut wire, false, false, Opcode::Text, b"Hel", [1, 2, 3, 4]);
/// write_client_frame(&mut wire, true, false, Opcode::Ping, b"?", [5, 6, 7, 8]);
/// write_client_frame(&mut wire, true, false, Opcode::Continuation, b"lo", [9, 9, 9, 9]);
///
/// let mut dec = Decoder::new(&Config::default(), false);
/// let (mut message, mut pings, mut input) = (Vec::new(), 0, &mut wire[..]);
/// loop {
///     let step = dec.decode(input)?;
///     match step.event {
///         None => break,
///         Some(Event::Data(d)) => message.extend_from_slice(d.slice(input)),
///         Some(Event::Ping(payload)) => pings += payload.len(),
///         Some(_) => unreachable!(),
///     }
///     input = &mut input[step.consumed..];
/// }
/// assert_eq!((&message[..], pings), (&b"Hello"[..], 1));
/// # Ok::<(), protocol::ws::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame_size: u64,
    max_message_size: u64,
    /// permessage-deflate was negotiated: RSV1 may start a message.
    compression: bool,
    state: State,
    /// The header bytes read so far when a header arrives in pieces.
    head: [u8; 14],
    head_len: u8,
    /// Header length, known once its second byte is in.
    head_need: u8,
    /// The current frame.
    fin: bool,
    opcode: Opcode,
    mask: [u8; 4],
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// Payload bytes of the current frame so far, modulo 4 (where the
    /// masking key continues).
    mask_offset: usize,
    /// The open data message: its kind and whether it is compressed.
    message: Option<(MessageKind, bool)>,
    /// Payload bytes of the open message so far, including the current
    /// frame's declared length.
    message_len: u64,
    utf8: Utf8Validator,
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: u8,
    error: Option<Error>,
}

impl Decoder {
    /// A decoder for a connection whose handshake is done. `compression`:
    /// permessage-deflate was negotiated, so RSV1 may mark a compressed
    /// message ([`Handshake::deflate`](super::Handshake::deflate) is
    /// `Some`).
    pub fn new(config: &Config, compression: bool) -> Self {
        Decoder {
            max_frame_size: config.max_frame_size,
            max_message_size: config.max_message_size,
            compression,
            state: State::Header,
            head: [0; 14],
            head_len: 0,
            head_need: 2,
            fin: false,
            opcode: Opcode::Continuation,
            mask: [0; 4],
            remaining: 0,
            mask_offset: 0,
            message: None,
            message_len: 0,
            utf8: Utf8Validator::new(),
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            error: None,
        }
    }

    /// Decodes from `input` until one event is complete or the input runs
    /// out. Payload bytes are unmasked in place, so `input` must be mutable.
    pub fn decode(&mut self, input: &mut [u8]) -> Result<Step<'_>, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.advance(input) {
            Ok((consumed, raw)) => {
                let event = raw.map(|raw| self.event(raw));
                Ok(Step { consumed, event })
            }
            Err(e) => {
                self.error = Some(e);
                Err(e)
            }
        }
    }

    /// The decoder's state, to continue elsewhere with
    /// [`import`](Self::import). The limits and whether compression was
    /// negotiated are not part of it.
    pub fn export(&self) -> DecoderState {
        let mut state = DecoderState {
            phase: State::Header,
            head: Vec::new(),
            fin: false,
            opcode: Opcode::Continuation,
            mask: [0; 4],
            remaining: 0,
            mask_offset: 0,
            message: None,
            compressed: false,
            message_len: 0,
            utf8: Utf8State::default(),
            control: Vec::new(),
            error: self.error,
        };
        if self.error.is_some() {
            return state;
        }
        state.phase = self.state;
        state.message = self.message.map(|(kind, _)| kind);
        state.compressed = self.message.is_some_and(|(_, c)| c);
        state.message_len = self.message_len;
        state.utf8 = self.utf8.export();
        match self.state {
            State::Header => state.head = self.head[..usize::from(self.head_len)].to_vec(),
            State::Closed => {}
            State::Data | State::Control => {
                state.fin = self.fin;
                state.opcode = self.opcode;
                state.mask = self.mask;
                state.remaining = self.remaining;
                if self.state == State::Data {
                    state.mask_offset = self.mask_offset as u8;
                } else {
                    state.control = self.control[..usize::from(self.control_len)].to_vec();
                }
            }
        }
        state
    }

    /// A decoder that continues where the one that exported `state`
    /// stopped, with `config`'s limits (which may differ from the exporting
    /// side's) and `compression` as negotiated for the connection (as for
    /// [`new`](Self::new)).
    ///
    /// Refuses a state the decoder could not have reached — a partial
    /// header that is complete or was already invalid, a mask offset of 4
    /// or more, a compressed message without compression, a frame phase
    /// with an opcode of the wrong kind, a control payload over 125 bytes,
    /// a UTF-8 carry outside an uncompressed text message, … — and one
    /// beyond `config`: a frame larger than
    /// [`max_frame_size`](Config::max_frame_size), a message larger than
    /// [`max_message_size`](Config::max_message_size).
    pub fn import(
        state: DecoderState,
        config: &Config,
        compression: bool,
    ) -> Result<Self, ImportError> {
        let mut dec = Decoder::new(config, compression);
        if state.error.is_some() {
            let mut expected = dec.export();
            expected.error = state.error;
            check(
                state == expected,
                "DecoderState.error",
                "a failed decoder exports only its error",
            )?;
            dec.error = state.error;
            return Ok(dec);
        }
        let DecoderState {
            phase,
            head,
            fin,
            opcode,
            mask,
            remaining,
            mask_offset,
            message,
            compressed,
            message_len,
            utf8,
            control,
            error: _,
        } = state;

        // The open message.
        check(
            message.is_some() || !compressed,
            "DecoderState.compressed",
            "set without an open message",
        )?;
        check(
            compression || !compressed,
            "DecoderState.compressed",
            "set but compression was not negotiated",
        )?;
        check(
            message.is_some() || message_len == 0,
            "DecoderState.message_len",
            "not 0 without an open message",
        )?;
        check(
            message_len <= dec.max_message_size,
            "DecoderState.message_len",
            "exceeds max_message_size",
        )?;
        check(
            utf8.carry.is_empty() || (message == Some(MessageKind::Text) && !compressed),
            "DecoderState.utf8",
            "a partial code point outside an uncompressed text message",
        )?;
        dec.utf8 = Utf8Validator::import(utf8)?;
        dec.message = message.map(|kind| (kind, compressed));
        dec.message_len = message_len;

        // The current frame.
        check(
            phase == State::Header || head.is_empty(),
            "DecoderState.head",
            "not empty outside the Header phase",
        )?;
        check(
            phase == State::Data || mask_offset == 0,
            "DecoderState.mask_offset",
            "not 0 outside the Data phase",
        )?;
        check(
            phase == State::Control || control.is_empty(),
            "DecoderState.control",
            "not empty outside the Control phase",
        )?;
        match phase {
            State::Header | State::Closed => {
                check(
                    !fin && opcode == Opcode::Continuation && mask == [0; 4] && remaining == 0,
                    "DecoderState.remaining",
                    "frame fields (fin, opcode, mask, remaining) set between frames",
                )?;
            }
            State::Data => {
                check(
                    !opcode.is_control(),
                    "DecoderState.opcode",
                    "a control opcode in the Data phase",
                )?;
                let Some(kind) = message else {
                    return Err(ImportError::new(
                        "DecoderState.message",
                        "no open message in the Data phase",
                    ));
                };
                check(
                    opcode == Opcode::Continuation || opcode == kind.opcode(),
                    "DecoderState.opcode",
                    "does not match the open message's kind",
                )?;
                check(
                    remaining > 0,
                    "DecoderState.remaining",
                    "0 in the Data phase",
                )?;
                check(
                    remaining <= dec.max_frame_size,
                    "DecoderState.remaining",
                    "exceeds max_frame_size",
                )?;
                check(
                    remaining <= message_len,
                    "DecoderState.remaining",
                    "larger than message_len",
                )?;
                check(mask_offset < 4, "DecoderState.mask_offset", "4 or more")?;
            }
            State::Control => {
                check(
                    opcode.is_control(),
                    "DecoderState.opcode",
                    "not a control opcode in the Control phase",
                )?;
                check(fin, "DecoderState.fin", "a control frame without FIN")?;
                check(
                    remaining > 0,
                    "DecoderState.remaining",
                    "0 in the Control phase",
                )?;
                check(
                    control.len() < MAX_CONTROL_PAYLOAD
                        && remaining <= (MAX_CONTROL_PAYLOAD - control.len()) as u64,
                    "DecoderState.control",
                    "control payload longer than 125 bytes",
                )?;
            }
        }
        dec.state = phase;
        dec.fin = fin;
        dec.opcode = opcode;
        dec.mask = mask;
        dec.remaining = remaining;
        dec.mask_offset = usize::from(mask_offset);
        dec.control[..control.len()].copy_from_slice(&control);
        dec.control_len = control.len() as u8;

        // A partial header: its bytes must have passed the checks they
        // would have met, and it must still be incomplete.
        if let Some(&first) = head.first() {
            dec.check_first(first)
                .map_err(|_| ImportError::new("DecoderState.head", "first byte refused"))?;
        }
        if let [first, second, ..] = head[..] {
            dec.check_second(first, second)
                .map_err(|_| ImportError::new("DecoderState.head", "second byte refused"))?;
            dec.head_need = head_need_of(second);
        }
        check(
            head.len() < usize::from(dec.head_need),
            "DecoderState.head",
            "a complete header",
        )?;
        dec.head[..head.len()].copy_from_slice(&head);
        dec.head_len = head.len() as u8;
        Ok(dec)
    }

    /// A Close frame was received: [`decode`](Decoder::decode) reads
    /// nothing more.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The kind of the fragmented message that is open, if any.
    pub fn open_message(&self) -> Option<MessageKind> {
        self.message.map(|(kind, _)| kind)
    }

    /// Whether the decoder is between frames with no message open: the
    /// stream so far ends on a message boundary.
    pub fn is_idle(&self) -> bool {
        self.state == State::Header && self.head_len == 0 && self.message.is_none()
    }

    fn event(&self, raw: Raw) -> Event<'_> {
        match raw {
            Raw::Data(d) => Event::Data(d),
            Raw::Control(op) => {
                let payload = &self.control[..usize::from(self.control_len)];
                match op {
                    Opcode::Ping => Event::Ping(payload),
                    Opcode::Pong => Event::Pong(payload),
                    // Checked by `control_done`.
                    _ => Event::Close(parse_close_payload(payload).ok().flatten()),
                }
            }
        }
    }

    fn advance(&mut self, input: &mut [u8]) -> Result<(usize, Option<Raw>), Error> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Closed => return Ok((pos, None)),
                State::Header => {
                    if !self.read_header(input, &mut pos)? {
                        return Ok((pos, None));
                    }
                    if let Some(raw) = self.start_frame()? {
                        return Ok((pos, Some(raw)));
                    }
                }
                State::Data => {
                    let avail = input.len() - pos;
                    if avail == 0 {
                        return Ok((pos, None));
                    }
                    let n = self.remaining.min(avail as u64) as usize;
                    let start = pos;
                    pos += n;
                    let data = &mut input[start..pos];
                    apply_mask(data, self.mask, self.mask_offset);
                    self.mask_offset = (self.mask_offset + n) % 4;
                    self.remaining -= n as u64;
                    let (kind, compressed) = self.message.expect("a data frame has a message");
                    if kind == MessageKind::Text && !compressed {
                        self.utf8.feed(data)?;
                    }
                    let fin = self.remaining == 0 && self.fin;
                    if self.remaining == 0 {
                        self.state = State::Header;
                        if fin {
                            self.end_message()?;
                        }
                    }
                    return Ok((
                        pos,
                        Some(Raw::Data(Data {
                            kind,
                            data: start..pos,
                            compressed,
                            fin,
                        })),
                    ));
                }
                State::Control => {
                    let have = usize::from(self.control_len);
                    let n = (self.remaining as usize).min(input.len() - pos);
                    let piece = &mut self.control[have..have + n];
                    piece.copy_from_slice(&input[pos..pos + n]);
                    apply_mask(piece, self.mask, have);
                    pos += n;
                    self.control_len += n as u8;
                    self.remaining -= n as u64;
                    if self.remaining > 0 {
                        return Ok((pos, None));
                    }
                    return self.control_done().map(|raw| (pos, Some(raw)));
                }
            }
        }
    }

    /// Reads header bytes from `input[*pos..]`. `Ok(true)` when the header
    /// is complete and the frame fields are set.
    fn read_header(&mut self, input: &[u8], pos: &mut usize) -> Result<bool, Error> {
        let avail = &input[*pos..];
        // Fast path: the whole header is in the input; parse it in place.
        if self.head_len == 0 && avail.len() >= 2 {
            self.check_first(avail[0])?;
            let need = self.check_second(avail[0], avail[1])?;
            if avail.len() >= need {
                self.parse_header(&avail[..need])?;
                *pos += need;
                return Ok(true);
            }
        }
        // Slow path: collect the header byte by byte. The first two bytes
        // are checked as soon as they arrive, exactly as above.
        for &b in avail {
            let at = usize::from(self.head_len);
            self.head[at] = b;
            self.head_len += 1;
            *pos += 1;
            match at {
                0 => self.check_first(b)?,
                1 => self.head_need = self.check_second(self.head[0], b)? as u8,
                _ => {}
            }
            if at >= 1 && self.head_len == self.head_need {
                let head = self.head;
                self.head_len = 0;
                self.head_need = 2;
                self.parse_header(&head[..usize::from(head_need_of(head[1]))])?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks the first header byte: FIN, RSV and opcode, against the
    /// message state.
    fn check_first(&self, b: u8) -> Result<(), Error> {
        if b & 0x30 != 0 {
            return Err(Error::ReservedBits);
        }
        let opcode = Opcode::from_bits(b).ok_or(Error::UnknownOpcode)?;
        let fin = b & 0x80 != 0;
        let rsv1 = b & 0x40 != 0;
        if rsv1 && (!self.compression || opcode.is_control() || opcode == Opcode::Continuation) {
            return Err(Error::ReservedBits);
        }
        match opcode {
            _ if opcode.is_control() && !fin => Err(Error::FragmentedControlFrame),
            Opcode::Continuation if self.message.is_none() => Err(Error::UnexpectedContinuation),
            Opcode::Text | Opcode::Binary if self.message.is_some() => {
                Err(Error::ExpectedContinuation)
            }
            _ => Ok(()),
        }
    }

    /// Checks the second header byte (MASK, 7-bit length) and returns the
    /// header's length.
    fn check_second(&self, first: u8, b: u8) -> Result<usize, Error> {
        if b & 0x80 == 0 {
            return Err(Error::UnmaskedFrame);
        }
        if first & 0x08 != 0 && b & 0x7F > MAX_CONTROL_PAYLOAD as u8 {
            return Err(Error::ControlFrameTooLarge);
        }
        Ok(usize::from(head_need_of(b)))
    }

    /// Takes a complete, first-two-bytes-checked header: checks the
    /// extended length and the limits, and sets up the frame.
    fn parse_header(&mut self, h: &[u8]) -> Result<(), Error> {
        let len = match h[1] & 0x7F {
            126 => {
                let len = u64::from(u16::from_be_bytes([h[2], h[3]]));
                if len < 126 {
                    return Err(Error::NonMinimalLength);
                }
                len
            }
            127 => {
                let len = u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]);
                if len >> 63 != 0 {
                    return Err(Error::LengthOverflow);
                }
                if len <= 0xFFFF {
                    return Err(Error::NonMinimalLength);
                }
                len
            }
            n => u64::from(n),
        };
        let opcode = Opcode::from_bits(h[0]).expect("checked by check_first");
        if !opcode.is_control() {
            if len > self.max_frame_size {
                return Err(Error::FrameTooLarge);
            }
            let before = if opcode == Opcode::Continuation {
                self.message_len
            } else {
                0
            };
            if len > self.max_message_size.saturating_sub(before) {
                return Err(Error::MessageTooLarge);
            }
            self.message_len = before + len;
        }
        self.fin = h[0] & 0x80 != 0;
        self.opcode = opcode;
        self.mask.copy_from_slice(&h[h.len() - 4..]);
        self.remaining = len;
        self.mask_offset = 0;
        if let Opcode::Text | Opcode::Binary = opcode {
            let kind = if opcode == Opcode::Text {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            self.message = Some((kind, h[0] & 0x40 != 0));
        }
        Ok(())
    }

    /// Right after a header: an event for a frame without payload, else
    /// moves into the payload.
    fn start_frame(&mut self) -> Result<Option<Raw>, Error> {
        if self.opcode.is_control() {
            self.control_len = 0;
            if self.remaining == 0 {
                return self.control_done().map(Some);
            }
            self.state = State::Control;
            return Ok(None);
        }
        if self.remaining > 0 {
            self.state = State::Data;
            return Ok(None);
        }
        // An empty data frame: only its end of message is worth an event.
        if !self.fin {
            return Ok(None);
        }
        let (kind, compressed) = self.message.expect("checked by check_first");
        self.end_message()?;
        Ok(Some(Raw::Data(Data {
            kind,
            data: 0..0,
            compressed,
            fin: true,
        })))
    }

    /// A control frame's payload is complete.
    fn control_done(&mut self) -> Result<Raw, Error> {
        self.state = State::Header;
        if self.opcode == Opcode::Close {
            parse_close_payload(&self.control[..usize::from(self.control_len)])?;
            self.state = State::Closed;
        }
        Ok(Raw::Control(self.opcode))
    }

    /// The FIN frame of a data message is complete.
    fn end_message(&mut self) -> Result<(), Error> {
        let (kind, compressed) = self.message.take().expect("a message is open");
        self.message_len = 0;
        if kind == MessageKind::Text && !compressed {
            self.utf8.finish()?;
        }
        Ok(())
    }
}

/// The header length that the second header byte implies: 2 bytes, the
/// 16- or 64-bit extended length, and the 4-byte masking key.
const fn head_need_of(second: u8) -> u8 {
    match second & 0x7F {
        126 => 2 + 2 + 4,
        127 => 2 + 8 + 4,
        _ => 2 + 4,
    }
}
