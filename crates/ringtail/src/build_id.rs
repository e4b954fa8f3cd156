//! The build id: which build of `ringtail` runs, reported by `ctl status`,
//! by `/metrics` (`ringtail_build_info`) and in upgrade results.
//!
//! It is `RINGTAIL_BUILD_ID` from the build's environment, else the git
//! revision (`RINGTAIL_GIT_REV`, from `build.rs`). It is kept in the binary
//! as a fixed field after the marker `RINGTAIL-BUILD-ID:` (32 bytes, NUL
//! padded) and read through an opaque reference, so a deployment — or a
//! test that needs two distinguishable binaries for an upgrade — can stamp
//! a copy of the binary with its own id without rebuilding it.

/// The marker that precedes the field in the binary.
const MARKER: &[u8; 18] = b"RINGTAIL-BUILD-ID:";
/// Bytes of the id field.
const FIELD: usize = 32;

/// The id at compile time: `RINGTAIL_BUILD_ID` or the git revision.
const COMPILED: &str = match option_env!("RINGTAIL_BUILD_ID") {
    Some(id) => id,
    None => env!("RINGTAIL_GIT_REV"),
};

/// The marker followed by the id, NUL padded (truncated to 32 bytes).
const fn field() -> [u8; MARKER.len() + FIELD] {
    let mut out = [0u8; MARKER.len() + FIELD];
    let mut i = 0;
    while i < MARKER.len() {
        out[i] = MARKER[i];
        i += 1;
    }
    let id = COMPILED.as_bytes();
    let mut j = 0;
    while j < id.len() && j < FIELD {
        out[MARKER.len() + j] = id[j];
        j += 1;
    }
    out
}

/// Kept in the binary (`#[used]`) so it can be found and stamped.
#[used]
static BUILD_ID: [u8; MARKER.len() + FIELD] = field();

/// The build id of the running binary (the stamped field, up to its first
/// NUL; bytes that are not UTF-8 are replaced).
pub fn get() -> String {
    // `black_box` hides what the reference points to, so the bytes are read
    // from the binary's data at run time instead of being folded into the
    // code at compile time (a stamped copy must report its stamp).
    let field: &[u8; MARKER.len() + FIELD] = std::hint::black_box(&BUILD_ID);
    let id = &field[MARKER.len()..];
    let end = id.iter().position(|&b| b == 0).unwrap_or(FIELD);
    String::from_utf8_lossy(&id[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_id_is_the_compiled_one_and_the_marker_precedes_it() {
        assert_eq!(
            super::get(),
            &super::COMPILED[..super::COMPILED.len().min(32)]
        );
        assert!(super::BUILD_ID.starts_with(super::MARKER));
    }
}
