//! What `client` reads besides its arguments: messages and typed data from a file or
//! standard input, and passphrases from a file, the environment or a prompt.

use std::io::{IsTerminal, Read};
use std::path::Path;

use mpc_client::MpcError;

/// The most `client` reads from a file or standard input (messages, typed data): 1 MiB.
pub const MAX_INPUT: u64 = 1 << 20;

/// The bytes of `source`: `-` is standard input, anything else a file path.
pub fn read_source(what: &str, source: &str) -> Result<Vec<u8>, MpcError> {
    let mut buf = Vec::new();
    let n = if source == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| MpcError::input(format!("cannot read {what} from standard input: {e}")))?
    } else {
        std::fs::File::open(source)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut buf))
            .map_err(|e| MpcError::input(format!("cannot read {what} from {source}: {e}")))?
    };
    if n as u64 > MAX_INPUT {
        return Err(MpcError::input(format!(
            "{what} is larger than {MAX_INPUT} bytes"
        )));
    }
    Ok(buf)
}

/// The message of `sign-message`: the argument itself (`-`: standard input), or the
/// bytes of `--file`, signed exactly as read (no newline is removed).
pub fn message_bytes(arg: Option<&str>, file: Option<&Path>) -> Result<Vec<u8>, MpcError> {
    match (arg, file) {
        (Some("-"), None) => read_source("the message", "-"),
        (Some(m), None) => Ok(m.as_bytes().to_vec()),
        (None, Some(f)) => read_source("the message", &f.display().to_string()),
        (None, None) => Err(MpcError::input(
            "give the message as an argument, with --file FILE, or `-` for standard input",
        )),
        (Some(_), Some(_)) => Err(MpcError::input(
            "give the message either as an argument or with --file, not both",
        )),
    }
}

/// A passphrase file's content without its final line break (`\n` or `\r\n`); an
/// empty passphrase is refused.
pub fn read_passphrase_file(path: &Path) -> Result<String, MpcError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        MpcError::config(format!(
            "cannot read the passphrase file {}: {e}",
            path.display()
        ))
    })?;
    let pass = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if pass.is_empty() {
        return Err(MpcError::config(format!(
            "the passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(pass.to_string())
}

/// Where a passphrase comes from, in this order: `file` (a `--…-passphrase-file`
/// option), the environment variable `env`, then (when `prompt` and standard input is
/// a terminal) a prompt without echo, asked twice when `confirm` (a new key file).
/// `None`: none of them.
pub fn passphrase(
    file: Option<&Path>,
    env: &str,
    label: &str,
    prompt: bool,
    confirm: bool,
) -> Result<Option<String>, MpcError> {
    if let Some(f) = file {
        return read_passphrase_file(f).map(Some);
    }
    if let Some(p) = std::env::var(env).ok().filter(|p| !p.is_empty()) {
        return Ok(Some(p));
    }
    if !prompt || !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let read = |text: &str| {
        rpassword::prompt_password(text)
            .map_err(|e| MpcError::config(format!("cannot read the {label} passphrase: {e}")))
    };
    let pass = read(&format!("{label} passphrase: "))?;
    if pass.is_empty() {
        return Err(MpcError::config(format!("the {label} passphrase is empty")));
    }
    if confirm && read(&format!("{label} passphrase again: "))? != pass {
        return Err(MpcError::config(format!(
            "the two {label} passphrases differ"
        )));
    }
    Ok(Some(pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_files_lose_one_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pass");
        for (content, want) in [
            ("secret\n", Some("secret")),
            ("secret\r\n", Some("secret")),
            ("secret", Some("secret")),
            ("secret \n\n", Some("secret \n")),
            ("\n", None),
            ("", None),
        ] {
            std::fs::write(&p, content).unwrap();
            assert_eq!(
                read_passphrase_file(&p).ok().as_deref(),
                want,
                "{content:?}"
            );
        }
        // The file wins over the environment; a missing file is an error.
        std::fs::write(&p, "from the file\n").unwrap();
        let got = passphrase(Some(&p), "PATH", "device", false, false).unwrap();
        assert_eq!(got.as_deref(), Some("from the file"));
        assert!(passphrase(Some(&dir.path().join("none")), "PATH", "d", false, false).is_err());
        assert_eq!(
            passphrase(None, "WALLET_CLI_TEST_UNSET_VARIABLE", "d", false, false).unwrap(),
            None
        );
    }

    #[test]
    fn messages_from_argument_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m");
        std::fs::write(&f, b"line\n\x00\xff").unwrap();
        assert_eq!(message_bytes(Some("hi"), None).unwrap(), b"hi");
        assert_eq!(message_bytes(None, Some(&f)).unwrap(), b"line\n\x00\xff");
        assert!(message_bytes(None, None).is_err());
        assert!(message_bytes(Some("x"), Some(&f)).is_err());
        std::fs::write(&f, vec![b'a'; MAX_INPUT as usize + 1]).unwrap();
        assert!(message_bytes(None, Some(&f)).is_err());
    }
}
