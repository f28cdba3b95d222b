//! Port names ([`check_port_name`]): one printable word of the control protocol. (Which kind of
//! bad character is named is checked beside the module: the kind's type is not public.)

use serialtwin_core::{PortNameError, check_port_name};

#[test]
fn one_printable_word_is_a_name() {
    for name in [
        "inv-0.a_B",
        "inv0",
        "ttyUSB0",
        "a",
        "wechselrichter-ü",
        "逆变器1",
        "-",
    ] {
        assert_eq!(check_port_name(name), Ok(()), "{name:?}");
    }
}

#[test]
fn empty_and_star_are_refused() {
    assert_eq!(check_port_name(""), Err(PortNameError::Empty));
    assert_eq!(check_port_name("*"), Err(PortNameError::Star));
    // A star inside a word is not the wildcard.
    assert_eq!(check_port_name("inv*"), Ok(()));
}

#[test]
fn the_message_shows_the_name_escaped_and_the_place() {
    let message = check_port_name("inv\u{1b}0").unwrap_err().to_string();
    assert_eq!(
        message,
        "port name \"inv\\u{1b}0\" contains the control character '\\u{1b}' (U+001B) at \
         character 4: a port name must be one word of the control protocol (printable, no \
         whitespace)"
    );
    let message = check_port_name("inv 0").unwrap_err().to_string();
    assert!(
        message.starts_with("port name \"inv 0\" contains whitespace ' ' (U+0020) at character 4"),
        "{message}"
    );
    let message = check_port_name("a\tb").unwrap_err().to_string();
    assert!(message.contains("\"a\\tb\""), "{message}");
    assert!(!message.contains('\t'), "{message}");
    assert!(
        !check_port_name("a\nb")
            .unwrap_err()
            .to_string()
            .contains('\n')
    );
}
