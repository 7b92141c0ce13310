//! `grant_decimal_sum(x)`: an SQLite aggregate summing decimal text exactly (SQLite's own
//! `SUM` reads text as a float and rounds). Registered on every connection Grant opens.

use std::ffi::{c_int, c_void};
use std::str::FromStr;

use libsqlite3_sys as ffi;
use rust_decimal::Decimal;

/// The running sum, kept in the memory SQLite zeroes for each group
/// (`sqlite3_aggregate_context`): nothing to free.
#[repr(C)]
struct SumState {
    /// Whether a non-NULL value was seen.
    seen: u8,
    /// 0: fine; 1: overflow; 2: a value that is not a decimal.
    failed: u8,
    /// `Decimal::serialize` of the sum so far.
    sum: [u8; 16],
}

/// Registers the aggregate on the connection `db`.
pub(crate) fn register(db: *mut ffi::sqlite3) -> Result<(), sqlx::Error> {
    let name = c"grant_decimal_sum";
    // SAFETY: `db` is an open connection handle held locked by the caller; the name is a
    // NUL-terminated static string; the callbacks match SQLite's signatures and never unwind.
    #[allow(unsafe_code)]
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            name.as_ptr(),
            1,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC,
            std::ptr::null_mut::<c_void>(),
            None,
            Some(step),
            Some(finish),
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "SQLite refused to register grant_decimal_sum (code {rc})"
        )))
    }
}

fn parse(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

#[allow(unsafe_code)]
unsafe extern "C" fn step(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite calls this with a live context and `argc` argument values; the
    // aggregate context is at least `size_of::<SumState>()` zeroed bytes, suitably aligned
    // (SQLite aligns to 8), and lives until `finish`.
    unsafe {
        let state =
            ffi::sqlite3_aggregate_context(ctx, size_of::<SumState>() as c_int).cast::<SumState>();
        if state.is_null() {
            ffi::sqlite3_result_error_nomem(ctx);
            return;
        }
        let state = &mut *state;
        if state.failed != 0 || argc < 1 {
            return;
        }
        let value = *argv;
        if ffi::sqlite3_value_type(value) == ffi::SQLITE_NULL {
            return;
        }
        let text = ffi::sqlite3_value_text(value);
        let len = ffi::sqlite3_value_bytes(value);
        if text.is_null() || len < 0 {
            state.failed = 2;
            return;
        }
        let bytes = std::slice::from_raw_parts(text, len as usize);
        let Some(d) = std::str::from_utf8(bytes).ok().and_then(parse) else {
            state.failed = 2;
            return;
        };
        let so_far = if state.seen == 0 {
            Decimal::ZERO
        } else {
            Decimal::deserialize(state.sum)
        };
        match so_far.checked_add(d) {
            Some(sum) => {
                state.sum = sum.serialize();
                state.seen = 1;
            }
            None => state.failed = 1,
        }
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn finish(ctx: *mut ffi::sqlite3_context) {
    // SAFETY: as in `step`; a size of 0 returns NULL when `step` never ran (no rows).
    unsafe {
        let state = ffi::sqlite3_aggregate_context(ctx, 0).cast::<SumState>();
        if state.is_null() || ((*state).seen == 0 && (*state).failed == 0) {
            ffi::sqlite3_result_null(ctx);
            return;
        }
        let message: &[u8] = match (*state).failed {
            0 => {
                let text = crate::types::decimal_text(&Decimal::deserialize((*state).sum));
                ffi::sqlite3_result_text(
                    ctx,
                    text.as_ptr().cast(),
                    text.len() as c_int,
                    ffi::SQLITE_TRANSIENT(),
                );
                return;
            }
            1 => b"grant_decimal_sum: the sum overflows a decimal (28 digits)",
            _ => b"grant_decimal_sum: a value is not a decimal",
        };
        ffi::sqlite3_result_error(ctx, message.as_ptr().cast(), message.len() as c_int);
    }
}
