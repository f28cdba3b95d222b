"""The suite of the serialtwin Python package. It runs against the installed wheel (never a
source checkout): see crates/serialtwin-cli/tests/python_package.rs."""

pytest_plugins = ["pytester"]
