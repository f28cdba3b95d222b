//! Links ([`LinkSlot`]) claimed through the public API alone. (The tests that need a directory
//! of their own are beside the module, on the crate's test-only scratch directories.)

use serialtwin_core::{LinkError, LinkSlot};

#[test]
fn path_without_file_name_is_refused() {
    assert!(matches!(
        LinkSlot::claim("/"),
        Err(LinkError::NoFileName { .. })
    ));
}
