//! What counts as an acceptable username, password and display name.

use gantry_common::error::ApiError;

pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 128;
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

pub fn password(password: &str, username: &str) -> Result<(), ApiError> {
    if password.len() < MIN_PASSWORD {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("password must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(ApiError::bad_request(
            "invalid_password",
            format!("password must be at most {MAX_PASSWORD} bytes"),
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
    fn display_names() {
        assert!(display_name("Ada Lovelace").is_ok());
        assert!(display_name(" ").is_err());
        assert!(display_name("a\u{0}b").is_err());
        assert!(display_name(&"x".repeat(65)).is_err());
    }
}
