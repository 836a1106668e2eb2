//! What counts as an acceptable username, password and display name.

use gantry_common::error::ApiError;

/// The shortest acceptable password, in characters (Unicode scalar values,
/// as NIST SP 800-63B counts them), not bytes: "pässwörd" is 8 characters.
pub const MIN_PASSWORD: usize = 8;
/// The longest acceptable password, in characters.
pub const MAX_PASSWORD: usize = 128;
/// No password within [`MAX_PASSWORD`] characters is longer in bytes (a
/// character is at most 4 bytes of UTF-8), so login refuses a longer one as
/// wrong without counting or hashing it.
pub const MAX_PASSWORD_BYTES: usize = 4 * MAX_PASSWORD;
pub const MAX_DISPLAY_NAME: usize = 64;

/// 3–32 characters of letters, digits, `_`, `.` and `-`. Returned lower-cased
/// as the account key, so `Ada` and `ada` are one account.
pub fn username(name: &str) -> Result<String, ApiError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !(3..=32).contains(&name.len()) || !ok_chars {
        return Err(ApiError::bad_request(
            "invalid_username",
            "username must be 3 to 32 characters of letters, digits, '_', '.' or '-'",
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// At least [`MIN_PASSWORD`] and at most [`MAX_PASSWORD`] characters, and
/// not the username.
pub fn password(password: &str, username: &str) -> Result<(), ApiError> {
    // Bodies are at most 64 KiB, so counting characters costs microseconds.
    let chars = password.chars().count();
    if chars < MIN_PASSWORD {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("password must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if chars > MAX_PASSWORD {
        return Err(ApiError::bad_request(
            "invalid_password",
            format!("password must be at most {MAX_PASSWORD} characters"),
        ));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(ApiError::bad_request(
            "weak_password",
            "password must differ from the username",
        ));
    }
    Ok(())
}

pub fn display_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_display_name",
            format!("display_name must be 1 to {MAX_DISPLAY_NAME} printable characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username("Ada.L").unwrap(), "ada.l");
        for bad in ["ab", "", "has space", "x/y", &"a".repeat(33), "ümlaut"] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords() {
        assert!(password("s3cret-pass", "ada").is_ok());
        assert!(password("short", "ada").is_err());
        assert!(password("adalovelace", "AdaLovelace").is_err());
        assert!(password(&"x".repeat(129), "ada").is_err());
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        // 7 characters in 14 bytes: too short, though the bytes would pass.
        assert_eq!(password("ääääääá", "ada").unwrap_err().code, "weak_password");
        // 8 characters: long enough.
        assert!(password("pässwörd", "ada").is_ok());
        // 128 four-byte characters (512 bytes) are within the limit; 129 are not.
        assert!(password(&"🔑".repeat(128), "ada").is_ok());
        assert_eq!(password(&"🔑".repeat(129), "ada").unwrap_err().code, "invalid_password");
        // 128 two-byte characters: 256 bytes, accepted (a byte limit of 128 refused them).
        assert!(password(&"é".repeat(128), "ada").is_ok());
        // However large the input.
        assert_eq!(
            password(&"x".repeat(MAX_PASSWORD_BYTES + 1), "ada").unwrap_err().code,
            "invalid_password"
        );
    }

    #[test]
    fn display_names() {
        assert!(display_name("Ada Lovelace").is_ok());
        assert!(display_name(" ").is_err());
        assert!(display_name("a\u{0}b").is_err());
        assert!(display_name(&"x".repeat(65)).is_err());
    }
}
